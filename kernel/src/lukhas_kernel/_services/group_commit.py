"""Group commit: concurrent write transactions of one process share a commit.

A durable commit waits for the disk (SQLite with `synchronous=FULL` fsyncs
its log), which takes longer than the work of a typical write. So the writes
queued while one commit is under way are run together by the next batch:
each in a savepoint of one transaction, so a write that raises is undone
alone (its caller gets its exception, the others go on), then one commit
makes all of them durable. On a SQLite file the batches are run by the
writer thread (sqlite_writer.py); on a server, by a `WriteGroup`.

Invariants every runner of a batch keeps:
- a caller learns its outcome only after the batch's commit returned, so an
  acknowledged write is durable; when that commit fails, every write of the
  batch that had succeeded gets the commit's error (none was acknowledged);
- writes run in the order they were submitted;
- a caller that stopped waiting (`abandoned`) before its function returned
  has its savepoint rolled back: never committed behind its back. Once its
  function has returned the write is committed with the batch (unanswered,
  so at most ambiguous, as a single transaction whose caller gave up while
  it committed).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any, Generic, TypeVar, cast

import sqlalchemy as sa

from .._core.deadlines import Deadlines

__all__ = ["MAX_WORK_S", "MAX_WRITES", "Abandoned", "Statement", "Write", "WriteGroup",
           "fail_unacknowledged", "run_batch", "settle"]

T = TypeVar("T")
#: A batch ends after this many writes, or once its writes have run for this
#: long: its first caller's answer waits for the whole batch's commit.
MAX_WRITES = 64
MAX_WORK_S = 0.05
_SAVEPOINT, _RELEASE, _ROLLBACK_TO = ("SAVEPOINT lukhas_write", "RELEASE SAVEPOINT lukhas_write",
                                      "ROLLBACK TO SAVEPOINT lukhas_write")
#: Runs one SQL statement without parameters (a savepoint's), raising SQLAlchemy's errors.
Statement = Callable[[str], object]


class Abandoned(Exception):
    """The caller stopped waiting (its timeout) before the transaction committed."""


class Write(Generic[T]):
    """One caller's write: its function, run in the caller's context (what it
    logs carries the request's structlog context), and its outcome, which
    `settle` hands to the caller's future on the caller's loop."""

    __slots__ = ("abandoned", "context", "error", "fn", "future", "result")

    def __init__(self, fn: Callable[[sa.Connection], T]) -> None:
        self.fn = fn
        self.future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # Set on the caller's thread, read on the runner's: one attribute
        # store and load, each atomic (an Event would cost a lock and a
        # condition per write, and nobody waits on it).
        self.abandoned = False
        self.context = contextvars.copy_context()
        self.result: T | None = None
        self.error: BaseException | None = None

    async def outcome(self, deadlines: Deadlines[Write[Any]]) -> T:
        """The caller's side: the result once committed, or TimeoutError once
        `deadlines` expire it. A caller that stops waiting marks the write abandoned."""
        watched = deadlines.watch(self, self.future.get_loop())
        try:
            return await self.future
        except asyncio.CancelledError:
            self.abandoned = True
            raise
        finally:
            watched.discard(self)

    def time_out(self) -> None:
        """Its time is up: the caller gets TimeoutError, and the write is abandoned."""
        if not self.future.done():
            self.abandoned = True
            self.future.set_exception(TimeoutError())

    def run(self, conn: sa.Connection, statement: Statement) -> bool:
        """Run in a savepoint of `conn`'s transaction; False when that
        transaction did not survive this write's failure."""
        if self.abandoned:
            self.error = Abandoned()
            return True
        # Plain statements, not `conn.begin_nested()` (seven times the CPU);
        # `fn` may still nest its own: SQLAlchemy's names differ.
        statement(_SAVEPOINT)
        try:
            self.result = self.context.run(self.fn, conn)
            if self.abandoned:  # its caller answered 503: undo it
                raise Abandoned
            statement(_RELEASE)
        except BaseException as exc:
            self.result, self.error = None, exc
            try:
                statement(_ROLLBACK_TO)
                statement(_RELEASE)
            except Exception:
                # The database ended the whole transaction (a full disk, an
                # I/O error), taking the savepoint with it.
                return False
        return True


def run_batch(conn: sa.Connection, writes: Sequence[Write[Any]], statement: Statement | None = None) -> int:
    """Run `writes` in order in `conn`'s open transaction; returns how many
    ran. The rest belong to the next batch: their turn came after MAX_WORK_S,
    or after a failure that ended the transaction (which also undid the
    writes before it: they fail with that failure's error)."""
    statement = statement or conn.exec_driver_sql
    deadline = time.monotonic() + MAX_WORK_S
    for done, write in enumerate(writes, 1):
        if not write.run(conn, statement):
            assert write.error is not None
            fail_unacknowledged(writes[:done], write.error)
            return done
        if time.monotonic() >= deadline:
            return done
    return len(writes)


def fail_unacknowledged(writes: Iterable[Write[Any]], error: BaseException) -> None:
    """The transaction of `writes` was not committed: those that succeeded fail with `error`."""
    for write in writes:
        if write.error is None:
            write.result, write.error = None, error


def settle(writes: Iterable[Write[Any]]) -> None:
    """On the writes' loop, after their batch's commit: answer every caller still waiting."""
    for write in writes:
        if write.future.done():  # its caller stopped waiting
            continue
        if write.error is None:
            write.future.set_result(write.result)
        else:
            write.future.set_exception(write.error)


class WriteGroup(Generic[T]):
    """Writes that end with one step done once per batch, batched on a server.

    On PostgreSQL each `Database.write` is its own transaction. Writes that
    all end with the same serialised step (an append to a hash chain, under
    a table lock) take turns on it, across processes, for the whole of each
    transaction. A group runs this process's queued writes in one
    transaction per batch: each write in its own savepoint, then `finish`
    once, with the results of those that succeeded (in order), then one
    commit. So the lock is held from `finish` to the commit only, once per
    batch, and is taken after every row lock of the batch (one order:
    batches never deadlock). On SQLite every write is batched already (one
    writer thread); there `finish` runs in each write, with its one result.
    """

    def __init__(self, write: Callable[[Callable[[sa.Connection], Any]], Awaitable[Any]],
                 finish: Callable[[sa.Connection, list[T]], object], *, batched: bool,
                 deadlines: Deadlines[Write[Any]]) -> None:
        self._write, self._finish = write, finish
        self._batched, self._deadlines = batched, deadlines
        self._queue: deque[Write[T]] = deque()
        self._runner: asyncio.Task[None] | None = None

    async def write(self, fn: Callable[[sa.Connection], T]) -> T:
        """`fn(conn)` then `finish`, in a write transaction, committed when this
        returns; as `Database.write` (the same timeout and outcomes)."""
        if not self._batched:
            return await self._write(partial(self._alone, fn))  # type: ignore[no-any-return]
        write = Write(fn)
        self._queue.append(write)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._drain())
        return await write.outcome(self._deadlines)

    def _alone(self, fn: Callable[[sa.Connection], T], conn: sa.Connection) -> T:
        result = fn(conn)
        self._finish(conn, [result])
        return result

    def _run(self, writes: list[Write[T]], conn: sa.Connection) -> int:
        ran = run_batch(conn, writes)
        self._finish(conn, [cast(T, write.result) for write in writes[:ran] if write.error is None])
        return ran

    async def _drain(self) -> None:
        while self._queue:
            batch: list[Write[T]] = []
            while self._queue and len(batch) < MAX_WRITES:
                write = self._queue.popleft()
                if not write.future.done():  # else its caller is gone
                    batch.append(write)
            try:
                ran: int = await self._write(partial(self._run, batch))
            except BaseException as exc:  # nothing of the batch is durable
                ran = len(batch)
                fail_unacknowledged(batch, exc)
                if isinstance(exc, asyncio.CancelledError):  # the loop is stopping
                    settle(batch)
                    raise
            settle(batch[:ran])
            self._queue.extendleft(reversed(batch[ran:]))
