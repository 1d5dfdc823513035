"""Implements `hook_publisher_greeting` (for hook_publisher_greetings)."""

from lukhas_kernel import PluginInfo, hookimpl

from sample_plugins._kit import lukhas_routes  # noqa: F401


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(requires=("hook_publisher",))


@hookimpl
def hook_publisher_greeting(audience: str) -> list[str]:
    return [audience]
