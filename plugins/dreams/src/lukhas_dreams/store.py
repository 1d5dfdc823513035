"""Dream jobs in the table `dreams_jobs`: the one record of every job's state.

State changes are conditional updates (`WHERE status = … AND runner = …`), so
a job deleted or taken over by another process in the meantime is never
overwritten: the runner learns it from the row count and drops its work.

Any host process on the database claims the next job (`claim_next`): one
whose lease has passed, else a queued one, taken fairly across owners
(`_claimable`), selected with `FOR UPDATE SKIP LOCKED` inside the claiming
transaction. On PostgreSQL two claimers therefore never select the same row;
on SQLite the clause is not rendered, and needs not be: a write transaction
there is exclusive (BEGIN IMMEDIATE), so claims run one after another. A
claimed job records its runner and a lease, renewed while it runs (`renew`).
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from lukhas_kernel import Database, PagedSelect, PageQuery, UtcDateTime

from .identity import Incarnation
from .models import PENDING, DreamJob, DreamRequest, DreamSummary, Mode

__all__ = ["Claim", "DreamStore", "PendingLimit", "jobs"]

#: A job whose runner stopped or died (its lease passed) is run once more, then failed.
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
    sa.Column("runner", sa.String(320), nullable=True),  # see `identity`
    sa.Column("lease_expires_at", UtcDateTime, nullable=True),
    sa.Index("dreams_jobs_owner_created", "owner", "created_at", "id"),
    sa.Index("dreams_jobs_status_created", "status", "created_at", "id"),
    sa.Index("dreams_jobs_owner_started", "owner", "started_at"),
)
_HIDDEN = ("fragments", "result", "error", "runner", "lease_expires_at")
_NOT_SHOWN = ("owner", "attempts", *_HIDDEN)  # columns no summary shows
_INPUTS = (jobs.c.fragments, jobs.c.branches, jobs.c.depth, jobs.c.seed, jobs.c.mode, jobs.c.attempts)
#: A user's jobs, newest first: each page binds only the owner and its cursor.
_PAGES = PagedSelect(
    sa.select(*(jobs.c.id.label("dream_id") if name == "dream_id" else jobs.c[name]
                for name in DreamSummary.model_fields))
    .where(jobs.c.owner == sa.bindparam("owner")),
    [jobs.c.created_at, jobs.c.id], DreamSummary)


def _expired(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(jobs.c.status == "running", jobs.c.lease_expires_at < now)


_QUEUED = jobs.c.status == "queued"


def _claimable(condition: sa.ColumnElement[bool], now: datetime, *,
               newcomers_only: bool = False) -> sa.Select[Any]:
    """The job to claim next among those matching `condition`, fairly across owners.

    Round-robin over the owners with such jobs: first the owner with the
    fewest jobs running (with a live lease, in any process), then the one
    whose latest job started longest ago (an owner never served first), then
    that owner's oldest job. So a user's long queue never holds up another
    user's job for more than the jobs already running. With `newcomers_only`,
    only owners with no job running qualify: the runner's last free slot is
    kept for them (`JobRunner`).
    """
    live = sa.and_(jobs.c.status == "running", jobs.c.lease_expires_at >= now)
    # Few rows: only running jobs, read through the status index.
    running = (sa.select(jobs.c.owner, sa.func.count().label("jobs")).where(live)
               .group_by(jobs.c.owner).subquery("running"))
    served = jobs.alias("served")
    # max() of the (owner, started_at) index: one index lookup per owner.
    last_start = (sa.select(sa.func.max(served.c.started_at))
                  .where(served.c.owner == jobs.c.owner).scalar_subquery())
    statement = (
        sa.select(jobs.c.id, *_INPUTS)
        .select_from(jobs.outerjoin(running, running.c.owner == jobs.c.owner))
        .where(condition)
        .order_by(sa.func.coalesce(running.c.jobs, 0), last_start.nulls_first(),
                  jobs.c.created_at, jobs.c.id)
        .limit(1))
    if newcomers_only:
        statement = statement.where(running.c.jobs.is_(None))
    return statement


class PendingLimit(Exception):
    """The owner already has as many queued and running jobs as allowed."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    """What one `claim_next` did: the job it claimed (id and inputs), if any,
    and the jobs it failed as `interrupted` on the way."""

    job: tuple[str, dict[str, Any]] | None
    interrupted: list[str]


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
                .where(jobs.c.owner == owner, jobs.c.status.in_(PENDING))) or 0
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

        return await self.db.read(one, short=True)  # one row by its primary key

    async def page(self, owner: str, query: PageQuery) -> bytes:
        """The owner's jobs, newest first: the JSON of a `Page[DreamSummary]`."""
        return await self.db.read(lambda conn: _PAGES.json(conn, query, owner=owner), short=True)

    async def delete(self, dream_id: str) -> bool:
        return await self.db.write(
            lambda conn: conn.execute(jobs.delete().where(jobs.c.id == dream_id)).rowcount > 0)

    async def has_work(self, *, newcomers_only: bool = False) -> bool:
        """Whether a job waits to be claimed (by `claim_next` with the same
        `newcomers_only`): the poll, indexed reads only."""
        def found(conn: sa.Connection) -> bool:
            now = _now()
            if not newcomers_only:  # the common poll: two index probes
                return bool(conn.scalar(sa.select(sa.or_(
                    sa.exists().where(_QUEUED), sa.exists().where(_expired(now))))))
            # Whether there is one, not which: no order to compute.
            return any(conn.execute(_claimable(condition, now, newcomers_only=True).order_by(None))
                       .first() is not None for condition in (_expired(now), _QUEUED))

        return await self.db.read(found)

    async def claim_next(self, runner: str, lease_s: float, *,
                         newcomers_only: bool = False) -> Claim:
        """Claim the next job for `runner`, leased for `lease_s`: one whose
        lease passed (its runner died or stopped), else a queued one; each
        chosen fairly across owners (`_claimable`, with `newcomers_only`).

        An expired job that already ran `MAX_ATTEMPTS` times is failed with
        `interrupted` instead, and the next one is looked at.
        """
        def claim(conn: sa.Connection) -> Claim:
            now = _now()
            interrupted: list[str] = []
            for condition in (_expired(now), _QUEUED):
                # The inputs come with the row: the claim needs no second read.
                # Only the job's row is locked (the running counts are an outer join's nullable side).
                nexts = (_claimable(condition, now, newcomers_only=newcomers_only)
                         .with_for_update(skip_locked=True, of=jobs))
                while (row := conn.execute(nexts).first()) is not None:
                    mine = jobs.update().where(jobs.c.id == row.id, condition)
                    if row.attempts >= MAX_ATTEMPTS:
                        conn.execute(mine.values(status="failed", error=INTERRUPTED, finished_at=now,
                                                 lease_expires_at=None))
                        interrupted.append(row.id)
                        continue
                    claimed = conn.execute(mine.values(
                        status="running", started_at=now, attempts=jobs.c.attempts + 1,
                        runner=runner, lease_expires_at=now + timedelta(seconds=lease_s)))
                    if claimed.rowcount == 0:  # cannot happen under the row lock; never run it twice
                        break
                    inputs = {column.name: row._mapping[column.name] for column in _INPUTS}
                    return Claim((row.id, {**inputs, "attempts": row.attempts + 1}), interrupted)
            return Claim(None, interrupted)

        return await self.db.write(claim)

    async def renew(self, runner: str, dream_ids: Collection[str], lease_s: float) -> set[str]:
        """Extend the leases of `runner`'s running jobs among `dream_ids`; returns
        those it lost: deleted, or taken over by another process."""
        def renew(conn: sa.Connection) -> set[str]:
            conn.execute(
                jobs.update().where(jobs.c.id.in_(dream_ids), jobs.c.runner == runner,
                                    jobs.c.status == "running")
                .values(lease_expires_at=_now() + timedelta(seconds=lease_s)))
            # A job this runner has just finished is not lost.
            kept = conn.execute(sa.select(jobs.c.id).where(
                jobs.c.id.in_(dream_ids), jobs.c.runner == runner)).scalars()
            return set(dream_ids) - set(kept)

        return await self.db.write(renew)

    async def finish(self, dream_id: str, runner: str, status: str, mode: Mode, *,
                     result: dict[str, Any] | None = None, error: str | None = None) -> bool:
        """Record the end of `runner`'s run; False if the job was deleted or taken over meanwhile."""
        return await self.db.write(lambda conn: conn.execute(
            jobs.update().where(jobs.c.id == dream_id, jobs.c.status == "running",
                                jobs.c.runner == runner)
            .values(status=status, mode=mode, result=result, error=error, finished_at=_now(),
                    lease_expires_at=None)
        ).rowcount > 0)

    async def release(self, runner: str, dream_ids: Collection[str]) -> None:
        """End the leases of `runner`'s running jobs now (it stops): any live process takes them."""
        await self.db.write(lambda conn: conn.execute(
            jobs.update().where(jobs.c.id.in_(dream_ids), jobs.c.runner == runner,
                                jobs.c.status == "running")
            .values(lease_expires_at=_now())))

    async def expire_dead(self, me: Incarnation) -> list[str]:
        """End the leases of running jobs whose runner is certainly dead
        (`Incarnation.is_dead`): a restarted host takes its own jobs back at
        once instead of after their lease. Returns those jobs."""
        def running_dead(conn: sa.Connection) -> list[str]:
            rows = conn.execute(sa.select(jobs.c.id, jobs.c.runner).where(jobs.c.status == "running"))
            return [row.id for row in rows if row.runner and me.is_dead(row.runner)]

        def expire(conn: sa.Connection) -> list[str]:
            dead = running_dead(conn)
            if dead:
                conn.execute(jobs.update().where(jobs.c.status == "running", jobs.c.id.in_(dead))
                             .values(lease_expires_at=_now()))
            return dead

        # Most starts find none: a read tells, without a write transaction.
        if not await self.db.read(running_dead):
            return []
        return await self.db.write(expire)

    async def counts(self) -> dict[tuple[str, str], int]:
        """Jobs by (status, mode)."""
        def count(conn: sa.Connection) -> dict[tuple[str, str], int]:
            rows = conn.execute(
                sa.select(jobs.c.status, jobs.c.mode, sa.func.count()).group_by(jobs.c.status, jobs.c.mode))
            return {(status, mode): n for status, mode, n in rows}

        return await self.db.read(count)
