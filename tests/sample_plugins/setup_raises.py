"""Setup raises."""

from lukhas_kernel import hookimpl

from sample_plugins._kit import lukhas_plugin_info, lukhas_routes  # noqa: F401


@hookimpl
async def lukhas_setup(context) -> None:
    raise ConnectionError("database refused the connection")
