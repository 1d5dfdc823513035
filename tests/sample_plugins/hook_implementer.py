"""Implements hook_publisher's hook, requiring it."""

from lukhas_kernel import PluginInfo, hookimpl

from sample_plugins._kit import lukhas_routes  # noqa: F401


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(requires=("hook_publisher",))


@hookimpl
async def hook_publisher_greetings(context, audience: str) -> list[str]:
    return [f"hello {audience}, from {context.name}"]
