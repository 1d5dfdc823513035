"""HTTP routes of the vivox plugin (CONTRACT §8)."""

from __future__ import annotations

from aiohttp import web
from lukhas_kernel import PluginContext, ProblemError, Route, current_user
from pydantic import RootModel

from . import formulas
from .engine import DriftEngine
from .models import (
    Analysis,
    AnalysisQuery,
    DayDrift,
    Drifting,
    DriftMetrics,
    DriftUpdate,
    Population,
    VivoxSettings,
)
from .store import VivoxStore

PREFIX = "/api/v1/drift"
TOP_DRIFTING = 10


class AnalysisOrPopulation(RootModel[Analysis | Population]):
    """A user's analysis, or (admin, without `user_id`) the population summary."""


def drift_routes(context: PluginContext) -> list[Route]:
    settings: VivoxSettings = context.settings  # type: ignore[assignment]

    def engine() -> DriftEngine:
        return context.state["engine"]

    def store() -> VivoxStore:
        return context.state["store"]

    async def visible_user(request: web.Request, user_id: str) -> str:
        """`user_id` if the caller may read it and it exists; 404 otherwise."""
        caller = current_user(request)
        # Another user's metrics are "not found": existence is not revealed.
        if (caller.id != user_id and not caller.is_admin) or await context.user(user_id) is None:
            raise ProblemError(404, f"no user {user_id}")
        return user_id

    async def metrics(request: web.Request) -> DriftMetrics:
        user_id, caller = request.match_info["user_id"], current_user(request)
        if caller.id != user_id and not caller.is_admin:
            raise ProblemError(404, f"no user {user_id}")
        # Cached metrics belong to a user that exists: only a miss looks the user up.
        return await engine().current(user_id, on_miss=lambda: visible_user(request, user_id))

    async def update(request: web.Request, body: DriftUpdate) -> DriftMetrics:
        if await context.user(body.user_id) is None:
            raise ProblemError(404, f"no user {body.user_id}")
        await store().add(body.user_id, body.interactions)
        engine().invalidate(body.user_id)
        result = await engine().current(body.user_id)
        await store().set_drift(body.user_id, result.overall_drift)
        return result

    async def analysis(request: web.Request, query: AnalysisQuery) -> AnalysisOrPopulation:
        if query.user_id is None:
            if not current_user(request).is_admin:
                raise ProblemError(403, "the population summary is for admins; pass user_id")
            users, mean, top = await store().population(TOP_DRIFTING)
            return AnalysisOrPopulation(Population(
                users=users, mean_drift=mean,
                top_drifting=[Drifting(user_id=r.user_id, overall_drift=r.overall_drift,
                                       interactions=r.interactions) for r in top]))
        user_id = await visible_user(request, query.user_id)
        series = await engine().series(user_id, query.days, query.until) or []
        slope = formulas.slope([(day.toordinal(), value) for day, value in series])
        return AnalysisOrPopulation(Analysis(
            user_id=user_id, days=query.days,
            series=[DayDrift(date=day, overall_drift=value) for day, value in series],
            slope_per_day=slope, trend=formulas.trend(slope)))

    return [
        Route("GET", f"{PREFIX}/analysis", analysis, query=AnalysisQuery,
              response=AnalysisOrPopulation, summary="Daily drift series and trend, or the population",
              errors={403: "population summary without admin role", 404: "no such user (or not yours)"}),
        Route("POST", f"{PREFIX}/update", update, body=DriftUpdate, response=DriftMetrics,
              role="admin", summary="Add a user's interactions; answers the recomputed metrics",
              errors={404: "no such user"}),
        Route("GET", f"{PREFIX}/{{user_id}}", metrics, response=DriftMetrics,
              rate_limit=settings.read_rate_limit or None, summary="A user's drift metrics (cached)",
              errors={404: "no such user (or not yours)"}),
    ]
