"""Setup raises with markup in its message: pages must show it as text."""

from lukhas_kernel import hookimpl

from sample_plugins._kit import lukhas_plugin_info, lukhas_routes  # noqa: F401


@hookimpl
async def lukhas_setup(context) -> None:
    raise RuntimeError("<script>alert('x')</script> & <b>bold</b>")
