"""How a plugin calls the hooks it publishes for other plugins (`context.hooks`)."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["NoHookCalls", "PublishedHooks"]


class PublishedHooks(Protocol):
    """`context.hooks`: calls the hooks this plugin published (`lukhas_hookspecs`)."""

    async def call(self, hook: str, /, **arguments: Any) -> dict[str, Any]:
        """Call `hook` on every serving plugin that implements it, concurrently,
        each within the plugin timeout; their results by plugin name.

        Pass every parameter of the specification but `context`: each
        implementation receives its own plugin's context. One that raises or
        hangs is logged (`plugin.hook_failed`) and left out. Raises
        ValueError for a hook this plugin did not publish, TypeError for
        arguments the specification does not name.
        """
        ...


class NoHookCalls:
    """`context.hooks` of a context the kernel has not registered: nothing to call."""

    async def call(self, hook: str, /, **arguments: Any) -> dict[str, Any]:
        raise RuntimeError(f"cannot call {hook}: the plugin is not registered with a kernel")
