"""Hook implementations shared by the sample plugins.

A plugin module re-exports the ones it wants (pluggy finds marked functions by
attribute), so each broken sample states only what is broken about it.
"""

from __future__ import annotations

from aiohttp import web
from lukhas_kernel import PluginInfo, Route, hookimpl
from pydantic import BaseModel


class Pong(BaseModel):
    plugin: str


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(version="1.0")


@hookimpl
def lukhas_routes(context) -> list[Route]:
    async def ping(request: web.Request) -> Pong:
        return Pong(plugin=context.name)

    return [Route("GET", f"/api/v1/{context.name}/ping", ping, response=Pong)]
