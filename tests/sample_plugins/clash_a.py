"""Claims the /api/v1/shared prefix first (by name order)."""

from lukhas_kernel import PluginInfo, hookimpl

from sample_plugins._kit import lukhas_routes  # noqa: F401


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(route_prefixes=("/api/v1/shared",))
