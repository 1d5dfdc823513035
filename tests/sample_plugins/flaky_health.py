"""A health check whose answer the test controls: degraded, then recovered."""

from lukhas_kernel import hookimpl

from sample_plugins._kit import lukhas_plugin_info, lukhas_routes  # noqa: F401

healthy = {"now": False}


@hookimpl
def lukhas_health_checks(context):
    async def upstream() -> bool:
        return healthy["now"]

    return {"upstream": upstream}
