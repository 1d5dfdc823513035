"""Written for a plugin API the kernel does not have."""

from lukhas_kernel import PluginInfo, hookimpl

from sample_plugins._kit import lukhas_routes  # noqa: F401


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(api=">=2,<3")
