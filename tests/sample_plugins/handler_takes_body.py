"""A handler takes `body`, but its route declares no body model."""

from aiohttp import web
from lukhas_kernel import Route, hookimpl

from sample_plugins._kit import lukhas_plugin_info  # noqa: F401


@hookimpl
def lukhas_routes(context) -> list[Route]:
    async def create(request: web.Request, body) -> None:
        return None

    return [Route("POST", f"/api/v1/{context.name}/items", create, status=204)]
