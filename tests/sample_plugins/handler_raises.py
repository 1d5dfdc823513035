"""A route whose handler has a bug: 500 problem+json, host unaffected."""

from aiohttp import web
from lukhas_kernel import Route, hookimpl

from sample_plugins._kit import lukhas_plugin_info  # noqa: F401

calls: list[str] = []  # one entry per call of the handler


@hookimpl
def lukhas_routes(context):
    async def broken(request: web.Request) -> None:
        calls.append(request.path)
        raise KeyError("missing")

    return [Route("GET", "/api/v1/handler_raises/broken", broken)]
