"""Its lukhas_plugin_info is not marked with @hookimpl."""

from lukhas_kernel import PluginInfo

from sample_plugins._kit import lukhas_routes  # noqa: F401


def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(version="1.0")
