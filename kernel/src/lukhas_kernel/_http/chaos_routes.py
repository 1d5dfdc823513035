"""Admin routes over the chaos plan: read and replace the injected faults."""

from __future__ import annotations

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from .._core.problems import ProblemError
from .._lifecycle.chaos import ChaosPlan, ChaosSpecError
from .._lifecycle.kernel import Kernel
from .._plugin.route import Route
from .auth import current_user

__all__ = ["ChaosFaults", "chaos_routes"]

log = structlog.get_logger("lukhas.kernel")


class ChaosFaults(BaseModel):
    """The active faults, as `plugin:stage:mode` entries (the `LUKHAS_CHAOS` syntax)."""

    model_config = ConfigDict(extra="forbid")

    faults: list[str]


def chaos_routes(kernel: Kernel) -> list[Route]:
    """`GET`/`PUT /api/v1/admin/chaos`; none at all unless chaos is enabled, so
    a host without it answers 404 there like at any unknown path."""
    if not kernel.settings.chaos_enabled:
        return []
    plan = kernel.chaos

    async def get_chaos(request: web.Request) -> ChaosFaults:
        return ChaosFaults(faults=plan.entries())

    async def put_chaos(request: web.Request, body: ChaosFaults) -> ChaosFaults:
        try:
            faults = ChaosPlan.parse_entries(body.faults, plugins=kernel.plugins)
        except ChaosSpecError as exc:
            # Every bad entry is named, and the plan stays as it was.
            raise ProblemError(
                422, "the request body failed validation", type="urn:lukhas:problem:validation",
                errors=[{"loc": ["body", "faults", index], "msg": message, "type": "value_error"}
                        for index, message in exc.errors],
            ) from None
        plan.replace(faults)
        entries = plan.entries()
        log.warning("chaos.replaced", faults=entries, by=current_user(request).id)
        return ChaosFaults(faults=entries)

    return [
        Route("GET", "/api/v1/admin/chaos", get_chaos, response=ChaosFaults, role="admin",
              summary="The injected faults (chaos enabled only)"),
        Route("PUT", "/api/v1/admin/chaos", put_chaos, body=ChaosFaults, response=ChaosFaults,
              role="admin", summary="Replace every injected fault (chaos enabled only): request and "
              "health faults apply from the next call, the others at the next attempt",
              errors={422: "an entry is malformed, names an unknown plugin, stage or mode, "
                           "or crashes at health or request; nothing changed"}),
    ]
