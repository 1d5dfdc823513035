"""A route declares a body model, but its handler has no `body` parameter."""

from aiohttp import web
from lukhas_kernel import Route, hookimpl
from pydantic import BaseModel

from sample_plugins._kit import lukhas_plugin_info  # noqa: F401


class ItemIn(BaseModel):
    text: str


@hookimpl
def lukhas_routes(context) -> list[Route]:
    async def create(request: web.Request) -> None:
        return None

    return [Route("POST", f"/api/v1/{context.name}/items", create, body=ItemIn, status=204)]
