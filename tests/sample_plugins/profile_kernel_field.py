"""Declares a profile field the kernel answers itself (`username`)."""

from lukhas_kernel import PluginInfo, hookimpl


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(profile_fields={"username": str})
