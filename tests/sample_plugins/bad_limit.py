"""Declares a rate limit the `limits` notation cannot parse."""

from aiohttp import web
from lukhas_kernel import Route, hookimpl

from sample_plugins._kit import lukhas_plugin_info  # noqa: F401


@hookimpl
def lukhas_routes(context):
    async def x(request: web.Request) -> None:
        return None

    return [Route("GET", "/api/v1/bad_limit/x", x, rate_limit="lots per hour")]
