"""HTTP routes of the dreams plugin (plugins/dreams/README.md, "Routes")."""

from __future__ import annotations

import secrets

from aiohttp import web
from lukhas_kernel import Page, PageQuery, ProblemError, Route, current_user, owned_by

from .models import SEED_RANGE, DreamAccepted, DreamJob, DreamRequest, DreamSummary, Mode
from .runtime import DreamsContext
from .store import PendingLimit

PREFIX = "/api/v1/dreams"
FLAG = "PARALLEL_DREAMS_ENABLED"


def dream_routes(context: DreamsContext) -> list[Route]:
    settings = context.settings
    request_model = DreamRequest.limited(settings.max_job_cost)

    async def create(request: web.Request, body: DreamRequest) -> DreamAccepted:
        mode: Mode = "parallel" if context.flags[FLAG] else "sequential"
        # A random seed is drawn now and stored, so a rerun after a restart
        # dreams the same dream.
        seed = body.seed if body.seed is not None else secrets.randbelow(SEED_RANGE[1])
        try:
            dream_id = await context.runtime.store.create(
                current_user(request).id, body, mode, seed, settings.max_pending_per_user)
        except PendingLimit as exc:
            raise ProblemError(
                429, f"you have {exc.args[0]} dreams queued or running; at most "
                f"{settings.max_pending_per_user} may wait at once",
                headers={"Retry-After": "5"}) from None
        context.runtime.runner.submit(dream_id)
        return DreamAccepted(dream_id=dream_id, status="queued", mode=mode)

    async def owned(request: web.Request) -> DreamJob:
        dream_id = request.match_info["dream_id"]
        return owned_by(current_user(request), await context.runtime.store.get(dream_id),
                        f"no dream {dream_id}")

    async def read(request: web.Request) -> DreamJob:
        return await owned(request)

    async def listing(request: web.Request, query: PageQuery) -> bytes:
        # The page's JSON as the store reads it (a Page[DreamSummary], unvalidated).
        return await context.runtime.store.page(current_user(request).id, query)

    async def delete(request: web.Request) -> None:
        job = await owned(request)
        if not await context.runtime.store.delete(job.dream_id):
            raise ProblemError(404, f"no dream {job.dream_id}")  # deleted meanwhile
        context.runtime.runner.cancel(job.dream_id)

    return [
        Route("POST", f"{PREFIX}/parallel", create, body=request_model, response=DreamAccepted,
              status=202, summary="Queue a dream job",
              errors={429: "too many of your dreams are queued or running"}),
        Route("GET", f"{PREFIX}/list", listing, query=PageQuery, response=Page[DreamSummary],
              summary="Your dreams, newest first"),
        Route("GET", f"{PREFIX}/{{dream_id}}", read, response=DreamJob,
              summary="A dream job, with its result once completed",
              errors={404: "no such dream (or not yours)"}),
        Route("DELETE", f"{PREFIX}/{{dream_id}}", delete, status=204,
              summary="Cancel a dream if queued or running, and remove it",
              errors={404: "no such dream (or not yours)"}),
    ]
