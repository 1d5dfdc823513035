"""Marks `lukhas_route` (for lukhas_routes) with @hookimpl."""

from aiohttp import web
from lukhas_kernel import Route, hookimpl

from sample_plugins._kit import lukhas_plugin_info  # noqa: F401


@hookimpl
def lukhas_route(context) -> list[Route]:
    async def ping(request: web.Request) -> dict[str, str]:
        return {"plugin": context.name}

    return [Route("GET", f"/api/v1/{context.name}/ping", ping)]
