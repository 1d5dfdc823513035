"""Publishes a hook (`hook_publisher_greetings`) and serves what implementers return."""

from aiohttp import web
from lukhas_kernel import PluginInfo, Route, hookimpl, hookspec


class Specifications:
    @staticmethod
    @hookspec
    def hook_publisher_greetings(context, audience: str) -> list[str]:
        """Greetings for `audience`, from each plugin that implements it."""


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(version="1.0")


@hookimpl
def lukhas_hookspecs() -> type:
    return Specifications


@hookimpl
def lukhas_routes(context) -> list[Route]:
    async def greetings(request: web.Request) -> dict[str, list[str]]:
        return await context.hooks.call("hook_publisher_greetings", audience="ada")

    return [Route("GET", "/api/v1/hook_publisher/greetings", greetings)]
