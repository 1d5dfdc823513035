"""Request-time calls into every serving plugin, each isolated from the others."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pluggy
import structlog

from .._core.isolation import StageError
from .._plugin.states import Stage
from .machine import KernelParts, PluginLifecycle

__all__ = ["Dispatcher", "HookCalls"]

log = structlog.get_logger("lukhas.kernel")


class Dispatcher:
    """Calls hooks of every serving plugin at request time."""

    def __init__(self, parts: KernelParts, plugins: Mapping[str, PluginLifecycle]) -> None:
        self.parts = parts
        self.plugins = plugins

    def declarations(self, hook: str) -> dict[str, list[Any]]:
        """Call a sync hook that returns a list (e.g. `lukhas_metrics`) on every
        serving plugin; non-empty results by plugin.

        A plugin whose hook raises or returns something else is logged and
        left out; the others' lists are kept.
        """
        results: dict[str, list[Any]] = {}
        for name, plugin in self.plugins.items():
            if not plugin.record.state.serving:
                continue
            try:
                items = self.parts.hooks.listed(hook, name, object, context=plugin.context)
            except (TypeError, StageError) as exc:
                log.warning("plugin.hook_failed", plugin=name, hook=hook, reason=str(exc))
                continue
            if items:
                results[name] = items
        return results

    async def call_each(self, hook: str, **kwargs: Any) -> dict[str, Any]:
        """Call `hook` on every serving plugin, concurrently and isolated.

        Each implementation receives the arguments it declares of `kwargs`
        and its own plugin's ``context``. A plugin that raises or runs past the
        plugin timeout is logged and left out; the others' results are kept.
        """
        serving = {n: p for n, p in self.plugins.items() if p.record.state.serving}
        impls = [impl for impl in self.parts.hooks.implementations(hook) if impl.plugin_name in serving]

        async def one(impl: pluggy.HookImpl) -> tuple[str, Any, str | None]:
            plugin = serving[impl.plugin_name]
            offered = {**kwargs, "context": plugin.context}
            arguments = {name: offered[name] for name in impl.argnames}
            try:
                result, _ = await self.parts.calls.run(impl.plugin_name, Stage.REQUEST,
                                                         lambda: impl.function(**arguments))
                return impl.plugin_name, result, None
            except StageError as exc:
                return impl.plugin_name, None, str(exc)

        results = {}
        for name, result, problem in await asyncio.gather(*(one(i) for i in impls)):
            if problem is None:
                results[name] = result
            else:
                log.warning("plugin.hook_failed", plugin=name, hook=hook, reason=problem)
        return results


class HookCalls:
    """One plugin's `context.hooks` (`PublishedHooks`): calls the hooks it
    published, on every serving plugin, as `call_each` calls the kernel's."""

    def __init__(self, plugin: str, dispatcher: Dispatcher) -> None:
        self._plugin = plugin
        self._dispatcher = dispatcher

    async def call(self, hook: str, /, **arguments: Any) -> dict[str, Any]:
        hooks = self._dispatcher.parts.hooks
        if hooks.publishers.get(hook) != self._plugin:
            raise ValueError(f"{hook} is not a hook {self._plugin} publishes (lukhas_hookspecs)")
        # `context` is each implementation's own; the caller passes the rest.
        expected = set(hooks.specified()[hook]) - {"context"}
        if set(arguments) != expected:
            raise TypeError(f"{hook} takes ({', '.join(sorted(expected))}), "
                            f"not ({', '.join(sorted(arguments))})")
        return await self._dispatcher.call_each(hook, **arguments)
