"""Implements a hook the kernel does not specify (a typo)."""

from lukhas_kernel import hookimpl

from sample_plugins._kit import lukhas_plugin_info, lukhas_routes  # noqa: F401


@hookimpl
async def lukhas_set_up(context) -> None:
    pass
