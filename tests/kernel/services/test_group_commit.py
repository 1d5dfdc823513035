"""Group commit: concurrent writes of one process share one transaction and one commit.

Each write runs in a savepoint of its batch's transaction: one that raises
fails alone and its batch-mates commit; a caller that stopped waiting is not
committed behind its back; writes apply in the order they were submitted; a
caller is answered only once the batch has committed, so when the commit
fails no write of the batch is acknowledged. On SQLite every `Database.write`
is batched (one writer thread); on PostgreSQL the writes of one
`Database.write_group`, which ends each batch with its `finish` step.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from lukhas_kernel._services import group_commit
from lukhas_kernel._services.storage import Database, default_url
from sqlalchemy.exc import IntegrityError, OperationalError

pytestmark = pytest.mark.both_databases

metadata = sa.MetaData()
items = sa.Table("gc_items", metadata, sa.Column("n", sa.Integer, primary_key=True),
                 sa.Column("label", sa.String(20), nullable=True))
parents = sa.Table("gc_parents", metadata, sa.Column("id", sa.Integer, primary_key=True))
children = sa.Table(
    "gc_children", metadata, sa.Column("id", sa.Integer, primary_key=True),
    # Checked at commit, not at the statement: a violation fails the batch's commit.
    sa.Column("parent", sa.Integer, sa.ForeignKey("gc_parents.id", deferrable=True,
                                                  initially="DEFERRED"), nullable=False))

Write = Callable[[sa.Connection], Any]


@pytest.fixture(autouse=True)
def _batches_cut_by_size_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Which writes share a batch must not depend on how fast the (shared)
    machine runs them: no batch here is cut for time, but in the test of that."""
    monkeypatch.setattr(group_commit, "MAX_WORK_S", 60.0)


@asynccontextmanager
async def opened(tmp_path: Any, url: str | None, **options: Any) -> AsyncIterator[Database]:
    """The test's database (`url`, else a SQLite file in `tmp_path`) with the tables above."""
    db = Database(url or default_url(tmp_path), **{"timeout_s": 10.0, **options})
    try:
        await db.write(metadata.create_all)
        yield db
    finally:
        await db.dispose()


def insert(n: int, seen: list[Any] | None = None) -> Write:
    def run(conn: sa.Connection) -> int:
        if seen is not None:
            seen.append(conn.get_transaction())  # which transaction the write ran in
        conn.execute(items.insert(), {"n": n})
        return n
    return run


async def stored(db: Database) -> list[int]:
    return list(await db.read(lambda conn: conn.scalars(sa.select(items.c.n).order_by(items.c.n)).all()))


async def queued_at_once(db: Database, writes: list[Callable[[], Any]]) -> list[Any]:
    """Start every write while this process's writer is held (by a transaction
    of `db.begin()`), so they queue up and run as one batch; their outcomes."""
    async with db.begin():
        tasks = [asyncio.ensure_future(write()) for write in writes]
        await asyncio.sleep(0)  # one turn of the loop: each task has queued its write
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_one_failing_write_fails_alone_and_the_others_commit_in_one_transaction(
        tmp_path, lukhas_database_url):
    async with opened(tmp_path, lukhas_database_url) as db:
        group = db.write_group(lambda conn, results: None)
        await group.write(insert(3))
        seen: list[Any] = []
        outcomes = await queued_at_once(db, [lambda n=n: group.write(insert(n, seen)) for n in range(6)])
        assert [type(o).__name__ for o in outcomes] == ["int"] * 3 + ["IntegrityError"] + ["int"] * 2
        assert outcomes[:3] + outcomes[4:] == [0, 1, 2, 4, 5]
        assert await stored(db) == [0, 1, 2, 3, 4, 5]
        assert len(seen) == 6 and all(transaction is seen[0] for transaction in seen)


async def test_a_groups_finish_runs_after_the_writes_with_the_results_of_those_that_succeeded(
        tmp_path, lukhas_database_url):
    async with opened(tmp_path, lukhas_database_url) as db:
        finished: list[list[int]] = []

        def finish(conn: sa.Connection, results: list[int]) -> None:
            finished.append(results)
            conn.execute(items.insert(), [{"n": 100 + n} for n in results])  # in the same transaction

        group = db.write_group(finish)
        await db.write(insert(3))
        outcomes = await queued_at_once(db, [lambda n=n: group.write(insert(n)) for n in range(6)])
        assert isinstance(outcomes[3], IntegrityError)
        assert sum(finished, []) == [0, 1, 2, 4, 5]
        assert len(finished) == (5 if db.is_sqlite else 1)  # per write on SQLite, per batch on a server
        assert await stored(db) == [0, 1, 2, 3, 4, 5, 100, 101, 102, 104, 105]


async def test_a_batch_is_cut_once_its_writes_ran_for_the_time_allowed(tmp_path, lukhas_database_url,
                                                                      monkeypatch):
    monkeypatch.setattr(group_commit, "MAX_WORK_S", 0.0)  # each write overruns it: a batch each
    async with opened(tmp_path, lukhas_database_url) as db:
        group = db.write_group(lambda conn, results: None)
        seen: list[Any] = []
        outcomes = await queued_at_once(db, [lambda n=n: group.write(insert(n, seen)) for n in range(4)])
        assert outcomes == [0, 1, 2, 3]
        assert await stored(db) == [0, 1, 2, 3]
        assert len({id(transaction) for transaction in seen}) == 4


async def test_writes_apply_in_the_order_they_were_submitted(tmp_path, lukhas_database_url):
    async with opened(tmp_path, lukhas_database_url) as db:
        group = db.write_group(lambda conn, results: None)

        def after_the_last(label: str) -> Write:
            def run(conn: sa.Connection) -> None:
                top = conn.scalar(sa.select(sa.func.coalesce(sa.func.max(items.c.n), 0)))
                conn.execute(items.insert(), {"n": top + 1, "label": label})
            return run

        writes = [lambda i=i: group.write(after_the_last(f"w{i}")) for i in range(40)]
        assert await queued_at_once(db, writes) == [None] * 40
        labels = await db.read(lambda conn: conn.scalars(sa.select(items.c.label).order_by(items.c.n)).all())
        assert list(labels) == [f"w{i}" for i in range(40)]


async def test_a_batch_whose_commit_fails_acknowledges_none_of_its_writes(tmp_path, lukhas_database_url):
    async with opened(tmp_path, lukhas_database_url) as db:
        group = db.write_group(lambda conn, results: None)

        def orphan(conn: sa.Connection) -> None:  # passes its savepoint; its commit cannot
            conn.execute(children.insert(), {"id": 1, "parent": 999})

        outcomes = await queued_at_once(db, [lambda: group.write(insert(1)), lambda: group.write(orphan),
                                             lambda: group.write(insert(2))])
        assert all(isinstance(outcome, IntegrityError) for outcome in outcomes), outcomes
        assert await stored(db) == []
        assert await group.write(insert(3)) == 3  # the next batch commits
        assert await stored(db) == [3]


@pytest.mark.sqlite_only
async def test_a_caller_that_stops_waiting_is_rolled_back_alone(tmp_path):
    async with opened(tmp_path, None) as db:
        running, go_on = threading.Event(), threading.Event()

        def slow(conn: sa.Connection) -> None:
            conn.execute(items.insert(), {"n": 2})
            running.set()
            go_on.wait(10)  # its caller gives up meanwhile

        first = asyncio.ensure_future(db.write(insert(1)))
        abandoned = asyncio.ensure_future(db.write(slow))
        last = asyncio.ensure_future(db.write(insert(3)))
        await asyncio.to_thread(running.wait, 10)
        abandoned.cancel()
        await asyncio.wait([abandoned])
        go_on.set()
        assert await asyncio.gather(first, last) == [1, 3]
        assert abandoned.cancelled()
        assert await stored(db) == [1, 3]


@pytest.mark.postgres_only
async def test_a_group_caller_that_stops_waiting_is_rolled_back_alone(tmp_path, lukhas_database_url):
    async with opened(tmp_path, lukhas_database_url) as db:
        group = db.write_group(lambda conn, results: None)
        callers: list[asyncio.Future[Any]] = []

        def cancelled_meanwhile(conn: sa.Connection) -> None:
            conn.execute(items.insert(), {"n": 2})
            callers[1].cancel()  # its request went away while it ran
            conn.execute(sa.select(1))  # the loop runs (the driver awaits): the caller is gone

        callers.extend(asyncio.ensure_future(group.write(fn))
                       for fn in (insert(1), cancelled_meanwhile, insert(3)))
        await asyncio.wait(callers)
        assert callers[1].cancelled()
        assert [callers[0].result(), callers[2].result()] == [1, 3]
        assert await stored(db) == [1, 3]


@pytest.mark.sqlite_only
async def test_a_write_that_ends_the_transaction_fails_the_writes_before_it_only(tmp_path):
    # As a full disk or an I/O error does: SQLite rolls the whole transaction
    # back, taking the batch's earlier writes with it. Those are not
    # acknowledged; the writes after it run in the next batch.
    async with opened(tmp_path, None) as db:

        def ends_it(conn: sa.Connection) -> None:
            conn.exec_driver_sql("ROLLBACK")
            raise OSError("disk full")

        outcomes = await queued_at_once(db, [lambda: db.write(insert(1)), lambda: db.write(ends_it),
                                             lambda: db.write(insert(3))])
        assert [repr(o) for o in outcomes[:2]] == [repr(OSError("disk full"))] * 2
        assert outcomes[2] == 3
        assert await stored(db) == [3]


@pytest.mark.sqlite_only
async def test_a_transaction_of_begin_runs_between_the_writes_queued_before_and_after(tmp_path):
    # busy_timeout 0: had the two connections raced for SQLite's lock, a loser would fail at once.
    async with opened(tmp_path, None, busy_timeout_ms=0) as db:
        before = [asyncio.ensure_future(db.write(insert(n))) for n in range(5)]
        await asyncio.sleep(0)  # one turn of the loop: they are queued
        async with db.begin() as conn:
            seen = (await conn.execute(sa.select(items.c.n).order_by(items.c.n))).scalars().all()
            after = [asyncio.ensure_future(db.write(insert(n))) for n in range(10, 15)]
            await conn.execute(items.insert(), {"n": 7})
            await asyncio.sleep(0)  # the writes after it are queued, and wait
            assert not any(task.done() for task in after)
        assert seen == [0, 1, 2, 3, 4]
        assert await asyncio.gather(*before, *after) == [0, 1, 2, 3, 4, *range(10, 15)]
        assert await stored(db) == [0, 1, 2, 3, 4, 7, *range(10, 15)]


@pytest.mark.sqlite_only
async def test_a_locked_database_fails_the_queued_batch_then_recovers(tmp_path):
    import sqlite3

    async with opened(tmp_path, None, busy_timeout_ms=50) as db:
        blocker = sqlite3.connect(tmp_path / "lukhas.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            outcomes = await asyncio.gather(*(db.write(insert(n)) for n in range(3)),
                                            return_exceptions=True)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert all(isinstance(outcome, OperationalError) for outcome in outcomes)
        assert await db.write(insert(9)) == 9
        assert await stored(db) == [9]
