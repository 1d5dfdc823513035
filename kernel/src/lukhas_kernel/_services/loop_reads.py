"""Short reads on the event loop's own SQLite connection, without a thread hop.

A read sent to a reader thread costs the hop there and back: the submit, the
reader's wake-up, and above all the loop's wake-up (`call_soon_threadsafe`
writes to the loop's self-pipe, a system call, then the loop reads it back).
Measured, not guessed: under wrk on `GET /api/v1/dreams/list` (a 21-row
indexed page, 64 connections) py-spy put the hop at 16 % of the request's
CPU time, more than SQLite executing and stepping the statement (10 %); and
reads alternated in one process (`process_time` over 2,000 reads, median of
6 rounds, on a busy 2-core machine) cost, on the loop and through the hop:
a one-row read by key 129 and 400 µs of CPU, the 21-row page 421 and 547 µs.
So a read its caller declares short (`Database.read(fn, short=True)`: a
few rows through an index, a handful of Python statements) runs right here.

It must still never hold the loop up, so this connection never waits:

- its busy timeout is 0: a read that would wait for a lock (rare in WAL
  mode: only while another connection recovers the log) fails at once;
- a progress handler interrupts a statement still running after
  `BUDGET_S`, a cold cache or a read that was not short after all.

Either way `read_now` raises `NotNow` and the caller runs the read again on a
reader thread, where it may wait (nothing to undo: it only read). So a read
blocks the loop at most about `BUDGET_S`, plus its own Python work, which
its caller vouches is small.

WAL readers never block the writer or each other, and each statement here
reads the latest committed state (no transaction is left open between reads).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

__all__ = ["BUDGET_S", "LoopReader", "NotNow"]

T = TypeVar("T")
#: The longest a statement runs on the loop before it is interrupted.
BUDGET_S = 0.002
#: SQLite virtual-machine steps between two looks at the clock: a page read
#: takes a few thousand, so the handler runs a few times per read.
_STEPS = 1000
_WAITING = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class NotNow(Exception):
    """The read would have waited, or ran past its budget: run it on a reader thread."""


class LoopReader:
    """One connection of `engine`, used only by the thread that first calls
    `read_now` (the event loop's); from any other thread `read_now` says NotNow."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._connection: sa.Connection | None = None
        self._thread: int | None = None
        self._deadline = 0.0
        self._cut = False

    def read_now(self, fn: Callable[[sa.Connection], T]) -> T:
        """`fn(connection)` now, on this thread; NotNow when it had to be cut short."""
        if threading.get_ident() != self._thread and self._thread is not None:
            raise NotNow
        connection = self._connection or self._open()
        self._deadline = time.monotonic() + BUDGET_S
        self._cut = False
        try:
            return fn(connection)
        except (sa.exc.OperationalError, sqlite3.OperationalError) as exc:
            if self._cut or _would_wait(exc):
                raise NotNow from exc
            raise
        finally:
            if connection.in_transaction():  # SQLAlchemy's own bookkeeping: no BEGIN was sent
                connection.rollback()

    def _open(self) -> sa.Connection:
        connection = self._engine.connect()
        driver = connection.connection.dbapi_connection
        assert isinstance(driver, sqlite3.Connection)
        driver.execute("PRAGMA busy_timeout=0")
        driver.set_progress_handler(self._over_budget, _STEPS)
        connection.rollback()
        self._connection, self._thread = connection, threading.get_ident()
        return connection

    def _over_budget(self) -> bool:
        # Called by SQLite every _STEPS steps of a statement on this connection;
        # True interrupts it ("interrupted", an OperationalError).
        if time.monotonic() > self._deadline:
            self._cut = True
        return self._cut

    def close(self) -> None:
        """Close the connection (none is in use: call when reads have stopped)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _would_wait(exc: Exception) -> bool:
    driver_error = getattr(exc, "orig", exc)
    code = getattr(driver_error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _WAITING
