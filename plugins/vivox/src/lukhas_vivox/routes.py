"""HTTP routes of the vivox plugin (see the plugin's README)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from lukhas_kernel import ProblemError, Route, current_user

from . import formulas
from .engine import Uncomputable
from .models import (
    Analysis,
    AnalysisOrPopulation,
    AnalysisQuery,
    DayDrift,
    Drifting,
    DriftMetrics,
    DriftUpdate,
    Population,
)
from .runtime import VivoxContext

PREFIX = "/api/v1/drift"
TOP_DRIFTING = 10
UNCOMPUTABLE = "the user's stored interactions give no finite metrics"


@asynccontextmanager
async def computable() -> AsyncIterator[None]:
    """Stored values the metrics cannot be computed over are a 409, not a crash."""
    try:
        yield
    except Uncomputable as exc:
        raise uncomputable(exc) from None


def uncomputable(exc: Uncomputable) -> ProblemError:
    return ProblemError(409, str(exc), type="urn:lukhas:problem:uncomputable")


async def visible_user(context: VivoxContext, request: web.Request, user_id: str) -> str:
    """`user_id` if the caller may read it and it exists; 404 otherwise."""
    caller = current_user(request)
    # Another user's metrics are "not found": existence is not revealed.
    if (caller.id != user_id and not caller.is_admin) or await context.user(user_id) is None:
        raise ProblemError(404, f"no user {user_id}")
    return user_id


def drift_routes(context: VivoxContext) -> list[Route]:
    # `/analysis` and `/update` come before `/{user_id}`, which would match them.
    return [analysis_route(context), update_route(context), metrics_route(context)]


def analysis_route(context: VivoxContext) -> Route:
    async def analysis(request: web.Request, query: AnalysisQuery) -> AnalysisOrPopulation:
        if query.user_id is None:
            if not current_user(request).is_admin:
                raise ProblemError(403, "the population summary is for admins; pass user_id")
            users, mean, top = await context.runtime.store.population(TOP_DRIFTING)
            return AnalysisOrPopulation(Population(
                users=users, mean_drift=mean,
                top_drifting=[Drifting(user_id=r.user_id, overall_drift=r.overall_drift,
                                       interactions=r.interactions) for r in top]))
        user_id = await visible_user(context, request, query.user_id)
        async with computable():
            series = await context.runtime.engine.series(user_id, query.days, query.until) or []
        slope = formulas.slope([(day.toordinal(), value) for day, value in series])
        return AnalysisOrPopulation(Analysis(
            user_id=user_id, days=query.days,
            series=[DayDrift(date=day, overall_drift=value) for day, value in series],
            slope_per_day=slope, trend=formulas.trend(slope)))

    return Route("GET", f"{PREFIX}/analysis", analysis, query=AnalysisQuery,
                 response=AnalysisOrPopulation,
                 summary="Daily drift series and trend, or the population",
                 errors={403: "population summary without admin role",
                         404: "no such user (or not yours)", 409: UNCOMPUTABLE})


def update_route(context: VivoxContext) -> Route:
    async def update(request: web.Request, body: DriftUpdate) -> DriftMetrics:
        if await context.user(body.user_id) is None:
            raise ProblemError(404, f"no user {body.user_id}")
        engine = context.runtime.engine
        # Computed inside the write's transaction: metrics that cannot be
        # computed refuse the update, and nothing of it is stored.
        async with computable():
            await context.runtime.store.add(
                body.user_id, body.interactions,
                compute=lambda conn: engine.compute_on(conn, body.user_id),
                drift=lambda metrics: metrics.overall_drift)
            engine.invalidate(body.user_id)
            # Computed again from what is committed, and cached: caching the
            # transaction's own result could put it over a later update's.
            return await engine.current(body.user_id)

    return Route("POST", f"{PREFIX}/update", update, body=DriftUpdate, response=DriftMetrics,
                 role="admin", summary="Add a user's interactions; answers the recomputed metrics",
                 errors={404: "no such user", 409: f"{UNCOMPUTABLE} (nothing stored)"})


def metrics_route(context: VivoxContext) -> Route:
    async def metrics(request: web.Request) -> bytes:
        user_id, caller = request.match_info["user_id"], current_user(request)
        if caller.id != user_id and not caller.is_admin:
            raise ProblemError(404, f"no user {user_id}")
        # Cached metrics belong to a user that exists: only a miss looks the user up.
        # (A try, not `computable()`: this is the hot path, read on every request.)
        try:
            return await context.runtime.engine.current_document(
                user_id, on_miss=lambda: visible_user(context, request, user_id))
        except Uncomputable as exc:
            raise uncomputable(exc) from None

    return Route("GET", f"{PREFIX}/{{user_id}}", metrics, response=DriftMetrics,
                 rate_limit=context.settings.read_rate_limit or None,
                 summary="A user's drift metrics (cached)",
                 errors={404: "no such user (or not yours)", 409: UNCOMPUTABLE})
