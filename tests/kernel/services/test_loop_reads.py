"""Short reads: answered on the event loop's own connection, else on a reader thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from lukhas_kernel import Database
from lukhas_kernel._services.storage import default_url

# Counting to this takes SQLite far longer than a short read's budget on the loop.
LONG_COUNT = 3_000_000
LONG = sa.text(f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {LONG_COUNT}) "
               "SELECT count(*) FROM n")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(default_url(tmp_path), timeout_s=10, busy_timeout_ms=200)
    await database.write(lambda conn: conn.execute(sa.text("CREATE TABLE t (x INTEGER)")))
    await database.write(lambda conn: conn.execute(sa.text("INSERT INTO t VALUES (1), (2)")))
    yield database
    await database.dispose()


class Calls:
    """Where a read function ran, call after call."""

    def __init__(self, statement: sa.TextClause) -> None:
        self.statement = statement
        self.threads: list[int] = []

    def __call__(self, conn: sa.Connection) -> int:
        self.threads.append(threading.get_ident())
        found: int = conn.execute(self.statement).scalar_one()
        return found


async def test_a_short_read_is_answered_on_the_loop_and_a_plain_one_on_a_thread(db: Database) -> None:
    short, plain = Calls(sa.text("SELECT sum(x) FROM t")), Calls(sa.text("SELECT sum(x) FROM t"))
    assert await db.read(short, short=True) == 3
    assert await db.read(plain) == 3
    assert short.threads == [threading.get_ident()]
    assert plain.threads != [threading.get_ident()]
    # It sees what a write committed just before, as a reader thread does.
    await db.write(lambda conn: conn.execute(sa.text("INSERT INTO t VALUES (4)")))
    assert await db.read(short, short=True) == 7


async def test_a_read_past_its_budget_is_cut_and_run_on_a_reader_thread(db: Database) -> None:
    long = Calls(LONG)
    assert await db.read(long, short=True) == LONG_COUNT
    loop_thread, reader_thread = long.threads
    assert loop_thread == threading.get_ident() != reader_thread
    # The loop's connection is fine afterwards.
    assert await db.read(Calls(sa.text("SELECT count(*) FROM t")), short=True) == 2


class LockedOnLoop(Calls):
    """Finds the database locked where it runs first, as a reader does while
    another connection recovers the log (which cannot be staged here)."""

    def __call__(self, conn: sa.Connection) -> int:
        if not self.threads:
            self.threads.append(threading.get_ident())
            locked = sqlite3.OperationalError("database is locked")
            locked.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
            raise sa.exc.OperationalError(str(self.statement), {}, locked)
        return super().__call__(conn)


async def test_a_read_that_would_wait_for_a_lock_waits_on_a_reader_thread(db: Database) -> None:
    read = LockedOnLoop(sa.text("SELECT sum(x) FROM t"))
    assert await db.read(read, short=True) == 3
    loop_thread, reader_thread = read.threads
    assert loop_thread == threading.get_ident() != reader_thread


async def test_errors_of_the_read_itself_are_not_retried(db: Database) -> None:
    wrong = Calls(sa.text("SELECT x FROM nowhere"))
    with pytest.raises(sa.exc.OperationalError, match="no such table"):
        await db.read(wrong, short=True)
    assert wrong.threads == [threading.get_ident()]


async def test_a_short_read_from_another_thread_than_the_loops_goes_to_a_reader(db: Database) -> None:
    assert await db.read(Calls(sa.text("SELECT 1")), short=True) == 1  # the loop's connection now
    other = Calls(sa.text("SELECT sum(x) FROM t"))

    def elsewhere() -> tuple[int, int]:
        return threading.get_ident(), asyncio.run(db.read(other, short=True))

    caller, found = await asyncio.to_thread(elsewhere)
    assert found == 3
    assert other.threads[0] not in (caller, threading.get_ident())
