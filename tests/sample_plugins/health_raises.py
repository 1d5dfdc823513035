"""Its health check raises: degraded, still serving."""

from lukhas_kernel import hookimpl

from sample_plugins._kit import lukhas_plugin_info, lukhas_routes  # noqa: F401


@hookimpl
def lukhas_health_checks(context):
    async def database() -> None:
        raise OSError("disk full")

    return {"database": database}
