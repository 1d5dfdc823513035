"""Dream jobs in the table `dreams_jobs`: the one record of every job's state.

State changes are conditional updates (`WHERE status = …`), so a job deleted
or claimed by someone else in the meantime is never overwritten: the runner
learns it from the row count and drops its work.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from lukhas_kernel import Database, Page, PageQuery, UtcDateTime, paginate

from .models import PENDING, DreamJob, DreamRequest, DreamSummary, Mode

__all__ = ["DreamStore", "PendingLimit", "jobs"]

#: A job interrupted by a stopped host is run once more, then failed.
MAX_ATTEMPTS = 2
INTERRUPTED = "interrupted"

metadata = sa.MetaData()
jobs = sa.Table(
    "dreams_jobs", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("fragments", sa.JSON, nullable=False),
    sa.Column("fragment_count", sa.Integer, nullable=False),
    sa.Column("branches", sa.Integer, nullable=False),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=True),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Index("dreams_jobs_owner_created", "owner", "created_at", "id"),
    sa.Index("dreams_jobs_status", "status"),
)
_SUMMARY = [c for c in jobs.c if c.name not in ("fragments", "result", "error")]


class PendingLimit(Exception):
    """The owner already has as many queued and running jobs as allowed."""


def _now() -> datetime:
    return datetime.now(UTC)


def _summary_fields(row: Any) -> dict[str, Any]:
    fields = {column.name: row._mapping[column.name] for column in _SUMMARY}
    fields["dream_id"] = fields.pop("id")
    del fields["owner"], fields["attempts"]
    return fields


class DreamStore:
    """Reads and writes `dreams_jobs` through the kernel's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, owner: str, request: DreamRequest, mode: Mode, seed: int,
                     max_pending: int) -> str:
        """Queue a job; PendingLimit when `owner` has `max_pending` unfinished."""
        dream_id = "drm_" + secrets.token_urlsafe(12)
        async with self.db.begin() as conn:
            pending = await conn.scalar(
                sa.select(sa.func.count()).select_from(jobs)
                .where(jobs.c.owner == owner, jobs.c.status.in_(PENDING)))
            if pending >= max_pending:
                raise PendingLimit(pending)
            await conn.execute(jobs.insert().values(
                id=dream_id, owner=owner, status="queued", mode=mode,
                fragments=list(request.fragments), fragment_count=len(request.fragments),
                branches=request.branches,
                depth=request.depth, seed=seed, attempts=0, created_at=_now()))
        return dream_id

    async def get(self, dream_id: str) -> tuple[str, DreamJob] | None:
        """The job and its owner, or None."""
        async with self.db.connect() as conn:
            row = (await conn.execute(jobs.select().where(jobs.c.id == dream_id))).first()
        if row is None:
            return None
        return row.owner, DreamJob(**_summary_fields(row), error=row.error, result=row.result)

    async def page(self, owner: str, query: PageQuery) -> Page[DreamSummary]:
        """The owner's jobs, newest first."""
        statement, split = paginate(
            sa.select(*_SUMMARY).where(jobs.c.owner == owner),
            [jobs.c.created_at, jobs.c.id], query)
        async with self.db.connect() as conn:
            rows, next_cursor = split((await conn.execute(statement)).all())
        items = [DreamSummary(**_summary_fields(row)) for row in rows]
        return Page[DreamSummary](items=items, count=len(items), next_cursor=next_cursor)

    async def delete(self, dream_id: str) -> bool:
        async with self.db.begin() as conn:
            return (await conn.execute(jobs.delete().where(jobs.c.id == dream_id))).rowcount > 0

    async def claim(self, dream_id: str) -> dict[str, Any] | None:
        """Move a queued job to running; its inputs, or None if it is not queued."""
        async with self.db.begin() as conn:
            claimed = await conn.execute(
                jobs.update().where(jobs.c.id == dream_id, jobs.c.status == "queued")
                .values(status="running", started_at=_now(), attempts=jobs.c.attempts + 1))
            if claimed.rowcount == 0:
                return None
            row = (await conn.execute(
                sa.select(jobs.c.fragments, jobs.c.branches, jobs.c.depth, jobs.c.seed, jobs.c.mode)
                .where(jobs.c.id == dream_id))).one()
        return dict(row._mapping)

    async def finish(self, dream_id: str, status: str, mode: Mode, *,
                     result: dict[str, Any] | None = None, error: str | None = None) -> bool:
        """Record a running job's end; False if it was deleted meanwhile."""
        async with self.db.begin() as conn:
            done = await conn.execute(
                jobs.update().where(jobs.c.id == dream_id, jobs.c.status == "running")
                .values(status=status, mode=mode, result=result, error=error, finished_at=_now()))
        return done.rowcount > 0

    async def recover(self) -> list[str]:
        """After a stop: requeue interrupted jobs once, fail them the second time.

        Returns the queued jobs, oldest first, for the runner to take.
        """
        async with self.db.begin() as conn:
            await conn.execute(
                jobs.update().where(jobs.c.status == "running", jobs.c.attempts >= MAX_ATTEMPTS)
                .values(status="failed", error=INTERRUPTED, finished_at=_now()))
            await conn.execute(
                jobs.update().where(jobs.c.status == "running")
                .values(status="queued", started_at=None))
            rows = await conn.execute(
                sa.select(jobs.c.id).where(jobs.c.status == "queued")
                .order_by(jobs.c.created_at, jobs.c.id))
            return list(rows.scalars())

    async def counts(self) -> dict[tuple[str, str], int]:
        """Jobs by (status, mode)."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(jobs.c.status, jobs.c.mode, sa.func.count()).group_by(
                    jobs.c.status, jobs.c.mode))
            return {(status, mode): n for status, mode, n in rows}
