"""Requires `healthy`; records the order in which set-ups ran."""

from lukhas_kernel import PluginInfo, hookimpl

from sample_plugins import healthy
from sample_plugins._kit import lukhas_routes  # noqa: F401


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(requires=("healthy",))


@hookimpl
async def lukhas_setup(context) -> None:
    healthy.events.append("needs_healthy.setup")
