"""A handler takes a parameter (`item_id`) the host never passes."""

from aiohttp import web
from lukhas_kernel import Route, hookimpl

from sample_plugins._kit import lukhas_plugin_info  # noqa: F401


@hookimpl
def lukhas_routes(context) -> list[Route]:
    async def read(request: web.Request, item_id: str) -> dict[str, str]:
        return {"item_id": item_id}

    return [Route("GET", f"/api/v1/{context.name}/items/{{item_id}}", read)]
