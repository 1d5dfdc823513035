"""`Database.read` / `Database.write`: one function per read or transaction.

On a SQLite file they run on worker threads (one hop per request); these
tests pin what that must not change: a locked database is 503 and recovers,
a write whose caller timed out is not committed behind its back, writes never
overlap, and `:memory:` (which the threads cannot share) still works.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
import sqlalchemy as sa
from lukhas_kernel._services.storage import Database, default_url
from sqlalchemy.exc import OperationalError
from support.answers import problem
from support.glyphs import GLYPHS
from support.polling import eventually_async

BIND = {"source": "user:ada", "target": "doc:q3", "symbol": "LINK"}

metadata = sa.MetaData()
items = sa.Table("t_items", metadata, sa.Column("n", sa.Integer, primary_key=True))


async def database(tmp_path, **options) -> Database:
    db = Database(default_url(tmp_path), **{"timeout_s": 5.0, **options})
    async with db.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return db


def stored(tmp_path) -> list[int]:
    with sqlite3.connect(tmp_path / "lukhas.db") as conn:
        return [n for (n,) in conn.execute("SELECT n FROM t_items ORDER BY n")]


async def test_a_write_whose_caller_timed_out_is_rolled_back_and_holds_the_writer(tmp_path):
    db = await database(tmp_path, timeout_s=0.2)
    order: list[str] = []

    def slow(conn: sa.Connection) -> None:
        conn.execute(items.insert(), {"n": 1})
        time.sleep(0.6)  # past the caller's timeout (and the next one's), still in the transaction
        order.append("slow done")

    def quick(conn: sa.Connection) -> None:
        order.append("quick runs")
        conn.execute(items.insert(), {"n": 2})

    with pytest.raises(TimeoutError):
        await db.write(slow)
    # The next write waits for the abandoned transaction to end, never runs beside it.
    with pytest.raises(TimeoutError):
        await db.write(quick)
    assert order == []
    await eventually_async(lambda: order, 2, interval=0.02, what="the abandoned write ended")
    await db.write(quick)
    assert order == ["slow done", "quick runs"]
    assert stored(tmp_path) == [2]  # the timed-out caller answered 503: its row is not there
    await db.dispose()


async def test_a_write_blocked_by_another_process_fails_then_recovers(tmp_path):
    db = await database(tmp_path, busy_timeout_ms=50)
    blocker = sqlite3.connect(tmp_path / "lukhas.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError):
            await db.write(lambda conn: conn.execute(items.insert(), {"n": 1}))
        # Reads go on beside the other writer (WAL).
        assert await db.read(lambda conn: conn.scalar(sa.select(sa.func.count()).select_from(items))) == 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await db.write(lambda conn: conn.execute(items.insert(), {"n": 1}))
    assert stored(tmp_path) == [1]
    await db.dispose()


async def test_concurrent_writes_all_commit_once_each(tmp_path):
    db = await database(tmp_path)

    def add(n: int) -> None:
        def insert(conn: sa.Connection) -> None:
            # Read, then write: only safe if no other write runs in between.
            top = conn.scalar(sa.select(sa.func.coalesce(sa.func.max(items.c.n), 0)))
            conn.execute(items.insert(), {"n": top + 1})
        return insert

    await asyncio.gather(*(db.write(add(i)) for i in range(50)))
    assert stored(tmp_path) == list(range(1, 51))
    await db.dispose()


async def test_in_memory_sqlite_runs_read_and_write_on_the_async_engine():
    db = Database("sqlite+aiosqlite:///:memory:", 5.0)
    async with db.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await db.write(lambda conn: conn.execute(items.insert(), {"n": 7}))
    assert await db.read(lambda conn: conn.scalar(sa.select(items.c.n))) == 7
    await db.dispose()


async def test_bind_while_the_database_is_locked_is_503_then_recovers(lukhas_host, tmp_path):
    client = await lukhas_host([GLYPHS], data_dir=tmp_path / "d", db_busy_timeout_ms=50)
    blocker = sqlite3.connect(tmp_path / "d" / "lukhas.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        response = await client.post("/api/v1/glyphs/bind", json=BIND)
        assert (await problem(response, 503))["detail"] == "storage unavailable; retry shortly"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (await client.post("/api/v1/glyphs/bind", json=BIND)).status == 201
