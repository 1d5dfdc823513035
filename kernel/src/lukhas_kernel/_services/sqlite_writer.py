"""SQLite's writer thread: this process's writes, committed in batches.

SQLite has one writer per database. Here it is one thread per process,
which takes what is queued when it is free (up to MAX_WRITES, up to the next
hold), runs it as one batch (group_commit.py: a savepoint per write, one
`BEGIN IMMEDIATE … COMMIT`), then answers the batch's callers. So a lone
write commits at once, and batches grow only while commits are the
bottleneck: a fsync shared by every write queued meanwhile.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import sqlalchemy as sa

from .group_commit import MAX_WRITES, Statement, Write, fail_unacknowledged, run_batch, settle

__all__ = ["SqliteWriter", "WriterHold"]


class WriterHold:
    """The writer thread held idle, for a transaction this process runs on
    another connection (`Database.begin`): granted once the writes queued
    before it have committed; the writer goes on at `release()`."""

    def __init__(self) -> None:
        self.granted: Future[None] = Future()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def serve(self, limit_s: float) -> None:
        """On the writer thread. `limit_s` bounds the wait should the holder
        never release: its transaction then meets the writer's on SQLite's
        file lock, which only makes one of them wait (the busy timeout)."""
        if self.granted.set_running_or_notify_cancel():
            self.granted.set_result(None)
            self._released.wait(limit_s)


class SqliteWriter:
    """The writer thread. `connect()` gives a connection of the stdlib
    driver whose `begin()` is `BEGIN IMMEDIATE`.

    The thread keeps one connection from one batch to the next: SQLite keeps
    a connection's page cache while no other connection has written, so the
    pages a write touches are read from the file once, not at every batch.
    A batch whose BEGIN or COMMIT failed leaves it for a fresh one.
    """

    def __init__(self, connect: Callable[[], sa.Connection], hold_limit_s: float) -> None:
        self._connect = connect
        self._connection: sa.Connection | None = None  # the writer thread's only
        self._hold_limit_s = hold_limit_s
        self._queue: deque[Write[Any] | WriterHold] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="lukhas-db-write", daemon=True)
        self._thread.start()

    def submit(self, write: Write[Any]) -> None:
        """Queue `write` for the next batch (on its loop's thread)."""
        self._enqueue(write)

    def hold(self) -> WriterHold:
        """Queue a hold of the writer (see `WriterHold`)."""
        hold = WriterHold()
        self._enqueue(hold)
        return hold

    def close(self) -> None:
        """Finish the batch under way, drop the queued rest (blocks: call off the loop)."""
        with self._ready:
            self._closed = True
            self._drop(list(self._queue))
            self._queue.clear()
            self._ready.notify()
        self._thread.join()

    def _drop(self, items: list[Write[Any] | WriterHold]) -> None:
        writes = [item for item in items if isinstance(item, Write)]
        fail_unacknowledged(writes, RuntimeError("the database was closed"))
        _answer(writes)
        for item in items:
            if isinstance(item, WriterHold):
                item.granted.cancel()

    def _enqueue(self, item: Write[Any] | WriterHold) -> None:
        with self._ready:
            if self._closed:
                raise RuntimeError("the database is closed")
            self._queue.append(item)
            self._ready.notify()

    def _serve(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                if isinstance(batch, WriterHold):
                    batch.serve(self._hold_limit_s)
                else:
                    self._commit(batch)
        finally:
            self._let_go()

    def _let_go(self) -> None:
        """Give the connection back (rolled back if a transaction was left open)."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):  # it is being given up either way
                connection.close()

    def _next_batch(self) -> list[Write[Any]] | WriterHold | None:
        """The queued writes up to the next hold (or that hold), None once closed."""
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            if self._closed:
                return None
            first = self._queue[0]
            if isinstance(first, WriterHold):
                self._queue.popleft()
                return first
            batch: list[Write[Any]] = []
            while self._queue and len(batch) < MAX_WRITES:
                item = self._queue[0]
                if isinstance(item, WriterHold):
                    break
                batch.append(item)
                self._queue.popleft()
            return batch

    def _commit(self, batch: list[Write[Any]]) -> None:
        ran = 0
        try:
            if self._connection is None:
                self._connection = self._connect()
            conn = self._connection
            with conn.begin():
                ran = run_batch(conn, batch, _driver_statement(conn))
        except BaseException as exc:  # BEGIN or COMMIT failed: nothing of the batch is durable
            ran = ran or len(batch)  # BEGIN failed: every write of the batch waited on it
            fail_unacknowledged(batch[:ran], exc)
            self._let_go()
        _answer(batch[:ran])
        with self._ready:  # the rest first in line: the order of writes is kept
            if self._closed:
                self._drop(list(batch[ran:]))
            else:
                self._queue.extendleft(reversed(batch[ran:]))


def _answer(writes: list[Write[Any]]) -> None:
    """One wake-up of each caller's loop for the whole batch, not one per write."""
    loops: dict[Any, list[Write[Any]]] = {}
    for write in writes:
        loops.setdefault(write.future.get_loop(), []).append(write)
    for loop, own in loops.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to wait
            loop.call_soon_threadsafe(settle, own)


def _driver_statement(conn: sa.Connection) -> Statement:
    """Savepoint statements straight on the stdlib driver: a tenth of their
    cost through SQLAlchemy. Its errors are raised as SQLAlchemy's, as every
    other statement's (the host answers those 503)."""
    driver = conn.connection.dbapi_connection
    error = conn.dialect.loaded_dbapi.Error

    def execute(sql: str) -> None:
        try:
            driver.execute(sql)  # type: ignore[union-attr]  # sqlite3.Connection
        except error as exc:
            raise sa.exc.DBAPIError.instance(sql, None, exc, error, hide_parameters=True,
                                             dialect=conn.dialect) from exc

    return execute
