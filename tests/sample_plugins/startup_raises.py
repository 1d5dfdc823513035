"""Sets up fine, then fails when the host starts."""

from lukhas_kernel import hookimpl

from sample_plugins._kit import lukhas_plugin_info, lukhas_routes  # noqa: F401

torn_down: list[str] = []


@hookimpl
async def lukhas_startup(context) -> None:
    raise ValueError("worker pool would not start")


@hookimpl
async def lukhas_teardown(context) -> None:
    torn_down.append(context.name)
