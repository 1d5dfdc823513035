"""Requires a plugin nobody installed."""

from lukhas_kernel import PluginInfo, hookimpl

from sample_plugins._kit import lukhas_routes  # noqa: F401


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(requires=("nonexistent",))
