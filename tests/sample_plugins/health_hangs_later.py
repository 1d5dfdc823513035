"""Healthy at start-up; every later health check hangs. `calls` counts them."""

import asyncio

from lukhas_kernel import hookimpl

from sample_plugins._kit import lukhas_plugin_info, lukhas_routes  # noqa: F401

calls = {"started": 0, "finished": 0}


@hookimpl
def lukhas_health_checks(context):
    async def upstream() -> None:
        calls["started"] += 1
        try:
            if calls["started"] > 1:
                await asyncio.sleep(3600)
        finally:
            calls["finished"] += 1

    return {"upstream": upstream}
