"""Group commit: concurrent write transactions of one process share a commit.

A durable commit waits for the disk (SQLite with `synchronous=FULL` fsyncs
its log), which takes longer than the work of a typical write. So the writes
queued while one commit is under way are run together by the next batch:
each in a savepoint of one transaction, so a write that raises is undone
alone (its caller gets its exception, the others go on), then one commit
makes all of them durable.

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
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Future
from functools import partial
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

__all__ = ["MAX_WORK_S", "MAX_WRITES", "Abandoned", "GroupCommitter", "Write", "WriteGroup",
           "WriterHold", "fail_unacknowledged", "run_batch"]

T = TypeVar("T")
#: A batch ends after this many writes, or once its writes have run for this
#: long: its first caller's answer waits for the whole batch's commit.
MAX_WRITES = 64
MAX_WORK_S = 0.05
_SAVEPOINT, _RELEASE, _ROLLBACK_TO = ("SAVEPOINT lukhas_write", "RELEASE SAVEPOINT lukhas_write",
                                      "ROLLBACK TO SAVEPOINT lukhas_write")


class Abandoned(Exception):
    """The caller stopped waiting (its timeout) before the transaction committed."""


class Write(Generic[T]):
    """One caller's write: its function, run in the caller's context (what it
    logs carries the request's structlog context), and its outcome."""

    __slots__ = ("abandoned", "context", "error", "fn", "result")

    def __init__(self, fn: Callable[[sa.Connection], T], abandoned: threading.Event) -> None:
        self.fn = fn
        self.abandoned = abandoned
        self.context = contextvars.copy_context()
        self.result: T | None = None
        self.error: BaseException | None = None

    def run(self, conn: sa.Connection) -> bool:
        """Run in a savepoint of `conn`'s transaction; False when that
        transaction did not survive this write's failure."""
        if self.abandoned.is_set():
            self.error = Abandoned()
            return True
        # Plain statements, not `conn.begin_nested()`: a seventh of the CPU,
        # and `fn` may still nest its own (SQLAlchemy's names differ).
        conn.exec_driver_sql(_SAVEPOINT)
        try:
            self.result = self.context.run(self.fn, conn)
            if self.abandoned.is_set():  # its caller answered 503: undo it
                raise Abandoned
            conn.exec_driver_sql(_RELEASE)
        except BaseException as exc:
            self.result, self.error = None, exc
            try:
                conn.exec_driver_sql(_ROLLBACK_TO)
                conn.exec_driver_sql(_RELEASE)
            except Exception:
                # The database ended the whole transaction (a full disk, an
                # I/O error), taking the savepoint with it.
                return False
        return True


def run_batch(conn: sa.Connection, writes: Sequence[Write[Any]]) -> int:
    """Run `writes` in order in `conn`'s open transaction; returns how many
    ran. The rest belong to the next batch: their turn came after MAX_WORK_S,
    or after a failure that ended the transaction (which also undid the
    writes before it: they fail with that failure's error)."""
    deadline = time.monotonic() + MAX_WORK_S
    for done, write in enumerate(writes, 1):
        if not write.run(conn):
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


class GroupCommitter:
    """One writer thread that commits this process's queued writes in batches.

    `connect()` gives a connection whose `begin()` opens a write transaction
    (on SQLite: `BEGIN IMMEDIATE`). A batch is what is queued when the
    writer is free, up to MAX_WRITES, so a lone write commits at once and
    batches grow only while commits are the bottleneck.
    """

    def __init__(self, connect: Callable[[], sa.Connection], hold_limit_s: float) -> None:
        self._connect = connect
        self._hold_limit_s = hold_limit_s
        self._queue: deque[tuple[Write[Any], Future[Any]] | WriterHold] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="lukhas-db-write", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sa.Connection], T], abandoned: threading.Event) -> Future[T]:
        """Queue `fn` for the next batch; the future resolves once that batch committed."""
        future: Future[T] = Future()
        self._enqueue((Write(fn, abandoned), future))
        return future

    def hold(self) -> WriterHold:
        """Queue a hold of the writer (see `WriterHold`)."""
        hold = WriterHold()
        self._enqueue(hold)
        return hold

    def close(self) -> None:
        """Finish the batch under way, cancel the queued rest (blocks: call off the loop)."""
        with self._ready:
            self._closed = True
            for item in self._queue:
                future = item.granted if isinstance(item, WriterHold) else item[1]
                if not future.cancel():  # running: put back by the batch before
                    future.set_exception(RuntimeError("the database was closed"))
            self._queue.clear()
            self._ready.notify()
        self._thread.join()

    def _enqueue(self, item: tuple[Write[Any], Future[Any]] | WriterHold) -> None:
        with self._ready:
            if self._closed:
                raise RuntimeError("the database is closed")
            self._queue.append(item)
            self._ready.notify()

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            if isinstance(batch, WriterHold):
                batch.serve(self._hold_limit_s)
            elif batch:
                self._commit(batch)

    def _next_batch(self) -> list[tuple[Write[Any], Future[Any]]] | WriterHold | None:
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
            batch: list[tuple[Write[Any], Future[Any]]] = []
            while self._queue and len(batch) < MAX_WRITES:
                item = self._queue[0]
                if isinstance(item, WriterHold):
                    break
                self._queue.popleft()
                # Running already: put back by the batch before. Cancelled: its caller is gone.
                if item[1].running() or item[1].set_running_or_notify_cancel():
                    batch.append(item)
            return batch

    def _commit(self, batch: list[tuple[Write[Any], Future[Any]]]) -> None:
        writes = [write for write, _ in batch]
        ran = 0
        try:
            with self._connect() as conn, conn.begin():
                ran = run_batch(conn, writes)
        except BaseException as exc:  # BEGIN or COMMIT failed: nothing of the batch is durable
            ran = ran or len(writes)  # BEGIN failed: every write of the batch waited on it
            fail_unacknowledged(writes[:ran], exc)
        for write, future in batch[:ran]:
            if write.error is None:
                future.set_result(write.result)
            else:
                future.set_exception(write.error)
        if ran < len(batch):
            self._requeue(batch[ran:])

    def _requeue(self, rest: list[tuple[Write[Any], Future[Any]]]) -> None:
        with self._ready:
            self._queue.extendleft(reversed(rest))


class WriteGroup:
    """Writes that take the same lock first, batched on a database server.

    On PostgreSQL each `Database.write` is its own transaction, and writes
    that all take one lock (an append to a hash chain) are serialised on it,
    across processes, for as long as each commit takes. A group runs this
    process's queued writes in one transaction per batch: `first(conn)` (taking
    the lock, before any write's row locks: one order, so batches never
    deadlock), then each write in its own savepoint, then one commit: one
    lock acquisition and one commit for the batch. On SQLite every write is
    batched already (one writer thread); there `first` runs in each write.
    """

    def __init__(self, write: Callable[[Callable[[sa.Connection], Any]], Awaitable[Any]],
                 first: Callable[[sa.Connection], object], *, batched: bool, timeout_s: float) -> None:
        self._write, self._first = write, first
        self._batched, self._timeout_s = batched, timeout_s
        self._queue: deque[tuple[Write[Any], asyncio.Future[Any]]] = deque()
        self._runner: asyncio.Task[None] | None = None

    async def write(self, fn: Callable[[sa.Connection], T]) -> T:
        """`fn(conn)` after `first(conn)`, in a write transaction, committed
        when this returns; as `Database.write` (the same timeout and outcomes)."""
        if not self._batched:
            return await self._write(partial(self._first_then, fn))  # type: ignore[no-any-return]
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        write = Write(fn, threading.Event())
        self._queue.append((write, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._drain())
        try:
            async with asyncio.timeout(self._timeout_s):
                return await future
        except asyncio.CancelledError:
            write.abandoned.set()
            raise

    def _first_then(self, fn: Callable[[sa.Connection], T], conn: sa.Connection) -> T:
        self._first(conn)
        return fn(conn)

    def _run(self, writes: list[Write[Any]], conn: sa.Connection) -> int:
        self._first(conn)
        return run_batch(conn, writes)

    async def _drain(self) -> None:
        while self._queue:
            batch: list[tuple[Write[Any], asyncio.Future[Any]]] = []
            while self._queue and len(batch) < MAX_WRITES:
                item = self._queue.popleft()
                if not item[1].done():  # else its caller is gone
                    batch.append(item)
            writes = [write for write, _ in batch]
            try:
                ran: int = await self._write(partial(self._run, writes))
            except BaseException as exc:  # nothing of the batch is durable
                ran = len(writes)
                fail_unacknowledged(writes, exc)
                if isinstance(exc, asyncio.CancelledError):  # the loop is stopping
                    _settle(batch)
                    raise
            _settle(batch[:ran])
            self._queue.extendleft(reversed(batch[ran:]))


def _settle(batch: Iterable[tuple[Write[Any], asyncio.Future[Any]]]) -> None:
    for write, future in batch:
        if future.done():  # its caller stopped waiting
            continue
        if write.error is None:
            future.set_result(write.result)
        else:
            future.set_exception(write.error)
