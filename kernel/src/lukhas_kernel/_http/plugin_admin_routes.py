"""Admin routes over one plugin's lifecycle: restart it, release its quarantine."""

from __future__ import annotations

from aiohttp import web

from .._core.problems import ProblemError, problem_type
from .._lifecycle.kernel import Kernel
from .._lifecycle.records import view_of
from .._plugin.route import Route
from .._plugin.states import PluginView

__all__ = ["plugin_admin_routes"]


def plugin_admin_routes(kernel: Kernel) -> list[Route]:
    def discovered(request: web.Request) -> str:
        name = request.match_info["name"]
        if name not in kernel.plugins:
            raise ProblemError(404, f"no plugin {name} is installed")
        return name

    async def restart(request: web.Request) -> PluginView:
        name = discovered(request)
        try:
            record = await kernel.restart(name)
        except ValueError as exc:
            raise ProblemError(409, str(exc), type=problem_type("conflict")) from None
        return view_of(record)

    async def release(request: web.Request) -> None:
        name = discovered(request)
        if not await kernel.release(name):
            raise ProblemError(404, f"{name} is not quarantined")

    return [
        Route("POST", "/api/v1/admin/plugins/{name}/restart", restart, response=PluginView,
              role="admin", summary="Tear a plugin down and bring it (and its dependents) up again",
              errors={404: "no such plugin",
                      409: "disabled, quarantined, failed at import or register, or restarting"}),
        Route("DELETE", "/api/v1/admin/plugins/{name}/quarantine", release, status=204,
              role="admin", summary="Release a quarantined plugin: it is tried again at the next "
              "start, or at once through restart",
              errors={404: "no such plugin, or not quarantined"}),
    ]
