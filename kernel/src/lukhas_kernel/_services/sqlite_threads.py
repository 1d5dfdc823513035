"""SQLite on worker threads: a whole read, or a whole write transaction, in one hop.

Through aiosqlite every driver call (cursor, execute, fetch, close) is a
round trip between the event loop and the connection's own thread, and
SQLAlchemy's statement and row processing runs on the loop. A request that
reads a page costs several such trips. Here the caller's function runs with
a synchronous SQLAlchemy connection (the stdlib `sqlite3` driver) on a worker
thread, so a request costs one hop, and the loop only awaits the result.

Only a file database can be shared this way: `:memory:` is private to its
connection. Server databases keep the async engine (see `Database.read`).

Writes go to one writer thread, which commits what is queued in batches
(group commit: see group_commit.py), so concurrent writes share one fsync.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL

from .group_commit import Abandoned, Write
from .loop_reads import LoopReader
from .sqlite_writer import SqliteWriter, WriterHold

__all__ = ["Abandoned", "SqliteThreads", "tune_sqlite"]

T = TypeVar("T")
WRITE = "lukhas_write"  # execution option marking a write transaction's connection
# Reads run beside each other (WAL). Two, so one slow read does not hold up the
# rest; more would mostly contend for the GIL.
READERS = 2


def tune_sqlite(engine: sa.Engine, busy_timeout_ms: int) -> None:
    """Pragmas and transaction handling for every connection of a SQLite `engine`
    (the sync engine, or an async engine's `sync_engine`)."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run beside the one writer; the busy timeout makes
        # a second writer (the CLI, another host) wait instead of failing.
        # synchronous=FULL: a commit fsyncs the WAL before it returns, so an
        # acknowledged write survives an OS crash or power loss too. (NORMAL
        # would survive only the process being killed, for ~15% more binds/s.)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Every batched write runs in a savepoint, whose undo log (SQLite's
        # statement journal) would otherwise spill past 64 KiB into a temp
        # file, written page by page and never synced: it only undoes a write
        # within its transaction. In memory it is the same, with no write calls.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()
        # The driver's own transaction handling skips DDL (a failed
        # migration would stay half-applied); SQLAlchemy issues BEGIN itself.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.pool, "reset")
    def on_reset(dbapi_connection: Any, _record: Any, state: Any) -> None:
        # A connection comes back with a transaction open only when its
        # commit or rollback was interrupted; it must not keep the write
        # lock. Otherwise there is nothing to roll back, and asking aiosqlite
        # costs a round trip to its thread on every request.
        if state.terminate_only:
            return
        driver = getattr(dbapi_connection, "_connection", dbapi_connection)  # aiosqlite's, or sqlite3's
        if driver is None or driver.in_transaction:
            dbapi_connection.rollback()

    @event.listens_for(engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        # A write transaction takes the write lock up front: one that reads
        # then writes (a check, then an insert) would otherwise fail at once
        # with "database is locked" when another writer committed meanwhile,
        # instead of waiting under the busy timeout. Reads issue no BEGIN:
        # each statement reads its own snapshot.
        if connection.get_execution_options().get(WRITE, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


class SqliteThreads:
    """A sync engine on the same file, READERS reader threads and one writer thread."""

    def __init__(self, url: URL, busy_timeout_ms: int, hold_limit_s: float) -> None:
        # One connection per thread at most (the loop's included), so checkout never waits.
        self.engine = sa.create_engine(
            url.set(drivername="sqlite"), pool_size=READERS + 2, max_overflow=0,
            pool_reset_on_return=None, connect_args={"check_same_thread": False})
        tune_sqlite(self.engine, busy_timeout_ms)
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="lukhas-db-read")
        self._loop = LoopReader(self.engine)
        self._writer = SqliteWriter(
            lambda: self.engine.connect().execution_options(**{WRITE: True}), hold_limit_s)

    # Reads and writes run `fn` in a copy of the caller's context: what it logs carries the
    # request's structlog context (request id, plugin), as on the loop.

    def read(self, fn: Callable[[sa.Connection], T]) -> Future[T]:
        """Run `fn` on a reader thread with a connection outside any transaction."""
        return self._readers.submit(contextvars.copy_context().run, self._read, fn)

    def read_now(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run a short read on the calling thread (the event loop's), with a
        connection that never waits; `NotNow` when it would (see loop_reads.py)."""
        return self._loop.read_now(fn)

    def write(self, write: Write[Any]) -> None:
        """Run `write` in a write transaction on the writer thread, in a
        savepoint of the next batch's; answered once that batch committed
        (see group_commit.py)."""
        self._writer.submit(write)

    def hold_writer(self) -> WriterHold:
        """Hold the writer idle once the writes queued so far have committed
        (for a transaction on another connection of this process)."""
        return self._writer.hold()

    def _read(self, fn: Callable[[sa.Connection], T]) -> T:
        with self.engine.connect() as connection:
            return fn(connection)

    def close(self) -> None:
        """Wait for running work, then close every connection (blocks: call off the loop)."""
        self._readers.shutdown(wait=True, cancel_futures=True)
        self._loop.close()
        self._writer.close()
        self.engine.dispose()
