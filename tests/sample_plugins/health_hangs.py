"""Its health check never answers: degraded after the timeout."""

import asyncio

from lukhas_kernel import hookimpl

from sample_plugins._kit import lukhas_plugin_info, lukhas_routes  # noqa: F401


@hookimpl
def lukhas_health_checks(context):
    async def queue() -> None:
        await asyncio.sleep(3600)

    return {"queue": queue}
