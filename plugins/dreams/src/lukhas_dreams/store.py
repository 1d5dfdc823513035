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
_NOT_SHOWN = ("owner", "attempts", "fragments", "result", "error")  # columns no summary shows


class PendingLimit(Exception):
    """The owner already has as many queued and running jobs as allowed."""


def _now() -> datetime:
    return datetime.now(UTC)


def _summary_fields(names: list[str], row: Any) -> dict[str, Any]:
    # `names` are the result's keys, taken once: `row._mapping` and `row._asdict()`
    # build a new mapping per call, which is most of a page's cost.
    fields = dict(zip(names, row, strict=True))
    fields["dream_id"] = fields.pop("id")
    for name in _NOT_SHOWN:
        fields.pop(name, None)
    return fields


class DreamStore:
    """Reads and writes `dreams_jobs` through the kernel's database, each
    operation one function run by `Database.read` or `Database.write`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, owner: str, request: DreamRequest, mode: Mode, seed: int,
                     max_pending: int) -> str:
        """Queue a job; PendingLimit when `owner` has `max_pending` unfinished."""
        dream_id = "drm_" + secrets.token_urlsafe(12)

        def insert(conn: sa.Connection) -> None:
            pending = conn.scalar(
                sa.select(sa.func.count()).select_from(jobs)
                .where(jobs.c.owner == owner, jobs.c.status.in_(PENDING)))
            if pending >= max_pending:
                raise PendingLimit(pending)  # rolls the transaction back: nothing was written
            conn.execute(jobs.insert().values(
                id=dream_id, owner=owner, status="queued", mode=mode,
                fragments=list(request.fragments), fragment_count=len(request.fragments),
                branches=request.branches,
                depth=request.depth, seed=seed, attempts=0, created_at=_now()))

        await self.db.write(insert)
        return dream_id

    async def get(self, dream_id: str) -> tuple[str, DreamJob] | None:
        """The job and its owner, or None."""
        def one(conn: sa.Connection) -> tuple[str, DreamJob] | None:
            result = conn.execute(jobs.select().where(jobs.c.id == dream_id))
            row = result.first()
            if row is None:
                return None
            fields = _summary_fields(list(result.keys()), row)
            return row.owner, DreamJob(**fields, error=row.error, result=row.result)

        return await self.db.read(one)

    async def page(self, owner: str, query: PageQuery) -> Page[DreamSummary]:
        """The owner's jobs, newest first."""
        statement, split = paginate(
            sa.select(*_SUMMARY).where(jobs.c.owner == owner),
            [jobs.c.created_at, jobs.c.id], query)

        def rows(conn: sa.Connection) -> Page[DreamSummary]:
            result = conn.execute(statement)
            names = list(result.keys())
            found, next_cursor = split(result.all())
            items = [DreamSummary(**_summary_fields(names, row)) for row in found]
            return Page[DreamSummary](items=items, count=len(items), next_cursor=next_cursor)

        return await self.db.read(rows)

    async def delete(self, dream_id: str) -> bool:
        return await self.db.write(
            lambda conn: conn.execute(jobs.delete().where(jobs.c.id == dream_id)).rowcount > 0)

    async def claim(self, dream_id: str) -> dict[str, Any] | None:
        """Move a queued job to running; its inputs, or None if it is not queued."""
        def update(conn: sa.Connection) -> dict[str, Any] | None:
            claimed = conn.execute(
                jobs.update().where(jobs.c.id == dream_id, jobs.c.status == "queued")
                .values(status="running", started_at=_now(), attempts=jobs.c.attempts + 1))
            if claimed.rowcount == 0:
                return None
            return dict(conn.execute(
                sa.select(jobs.c.fragments, jobs.c.branches, jobs.c.depth, jobs.c.seed, jobs.c.mode)
                .where(jobs.c.id == dream_id)).one()._mapping)

        return await self.db.write(update)

    async def finish(self, dream_id: str, status: str, mode: Mode, *,
                     result: dict[str, Any] | None = None, error: str | None = None) -> bool:
        """Record a running job's end; False if it was deleted meanwhile."""
        return await self.db.write(lambda conn: conn.execute(
            jobs.update().where(jobs.c.id == dream_id, jobs.c.status == "running")
            .values(status=status, mode=mode, result=result, error=error, finished_at=_now())
        ).rowcount > 0)

    async def recover(self) -> list[str]:
        """After a stop: requeue interrupted jobs once, fail them the second time.

        Returns the queued jobs, oldest first, for the runner to take.
        """
        def requeue(conn: sa.Connection) -> list[str]:
            conn.execute(
                jobs.update().where(jobs.c.status == "running", jobs.c.attempts >= MAX_ATTEMPTS)
                .values(status="failed", error=INTERRUPTED, finished_at=_now()))
            conn.execute(
                jobs.update().where(jobs.c.status == "running")
                .values(status="queued", started_at=None))
            return list(conn.execute(
                sa.select(jobs.c.id).where(jobs.c.status == "queued")
                .order_by(jobs.c.created_at, jobs.c.id)).scalars())

        return await self.db.write(requeue)

    async def counts(self) -> dict[tuple[str, str], int]:
        """Jobs by (status, mode)."""
        def count(conn: sa.Connection) -> dict[tuple[str, str], int]:
            rows = conn.execute(
                sa.select(jobs.c.status, jobs.c.mode, sa.func.count()).group_by(jobs.c.status, jobs.c.mode))
            return {(status, mode): n for status, mode, n in rows}

        return await self.db.read(count)
