"""The two dream engines behind one interface, and the fallback between them.

Both run the same pure function, `compute.dream_branch`, once per branch, so
the same seed and input give the same dream whichever engine runs it. Neither
computes on the event loop: the sequential engine prepares the input and runs
branches one after another on a worker thread; the parallel one sends the
input with every branch to an executor of processes, where each worker
prepares it once (`branch_process.corpus_for`).
A job is cancelled by cancelling its task: no further branch starts and
branches still pending on the executor are cancelled with it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import branch_process, compute
from .models import Mode

__all__ = ["DreamSpec", "Engines", "ParallelEngine", "PoolUnavailable", "SequentialEngine",
           "process_pool"]


@dataclass(frozen=True)
class DreamSpec:
    fragments: tuple[str, ...]
    branches: int
    depth: int
    seed: int


PING_WARM_S = 1.0  # how long a ping waits for a new pool's workers to have all answered
PING_PAUSE_S = 0.05  # between its rounds: time for a starting worker to come up


class PoolUnavailable(Exception):
    """The parallel engine's executor cannot start or has broken."""


def process_pool(workers: int | None) -> ProcessPoolExecutor:
    """The default parallel executor.

    Worker processes are spawned, not forked: the host runs threads (the
    database driver's, the sequential engine's), and forking a threaded
    process can copy a held lock into the child. Each warms itself up
    (`branch_process.start`) before its first task, so a job never pays for it.
    """
    return ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1,
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=branch_process.start)


class SequentialEngine:
    """Branches one after another, each on a worker thread."""

    mode: Mode = "sequential"

    def __init__(self, threads: ThreadPoolExecutor) -> None:
        self.threads = threads

    async def run(self, corpus: compute.Corpus, spec: DreamSpec) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return [
            await loop.run_in_executor(
                self.threads, compute.dream_branch, corpus, spec.depth, spec.seed, branch)
            for branch in range(spec.branches)
        ]


class ParallelEngine:
    """Every branch submitted at once to an executor of processes.

    Any `concurrent.futures.Executor` works (a Dask cluster's included, see
    `cluster`); it is made by `factory` on first use and made again after it
    broke. The factory runs on a thread, never on the event loop: connecting
    to a cluster may take up to its timeout.
    """

    mode: Mode = "parallel"

    def __init__(self, factory: Callable[[], Executor]) -> None:
        self.factory = factory
        self._executor: Executor | None = None
        self._warm = False  # every worker of this executor has answered a ping
        # One start at a time: jobs and the health check that need the executor
        # meanwhile wait for it, and share its failure rather than each trying
        # (and waiting out a connect timeout) in turn.
        self._starting = asyncio.Lock()
        self._starts = 0
        self._failure: str | None = None  # why the last start failed

    async def _get(self) -> Executor:
        starts = self._starts
        async with self._starting:
            if self._executor is None:
                if self._starts != starts and self._failure is not None:
                    raise PoolUnavailable(self._failure)  # it failed while this caller waited
                self._starts += 1
                # Shielded: a caller cancelled meanwhile leaves the executor to the next one.
                making = asyncio.ensure_future(asyncio.to_thread(self.factory))
                try:
                    self._executor, self._failure = await asyncio.shield(making), None
                except asyncio.CancelledError:
                    making.add_done_callback(self._adopt)
                    raise
                except Exception as exc:
                    self._failure = f"cannot start: {type(exc).__name__}: {exc}"
                    raise PoolUnavailable(self._failure) from exc
            return self._executor

    def _adopt(self, making: asyncio.Future[Executor]) -> None:
        """Keep an executor whose maker stopped waiting (or shut it down if one came meanwhile)."""
        if making.cancelled() or making.exception() is not None:
            return
        if self._executor is None:
            self._executor = making.result()
        else:
            making.result().shutdown(wait=False)

    def _discard(self) -> None:
        """Drop a broken executor. Its pending futures are left alone: the pool's
        own thread fails each of them, and on CPython 3.11 it dies on one that
        was cancelled meanwhile, before unblocking its queue, which then hangs
        the interpreter's exit."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
            self._warm = False

    async def _submit_all(self, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
        executor = await self._get()
        try:
            futures = [asyncio.wrap_future(executor.submit(fn, *args)) for fn, args in calls]
        except (BrokenExecutor, RuntimeError, OSError) as exc:  # RuntimeError: shut down
            self._discard()
            raise PoolUnavailable(f"broken: {type(exc).__name__}: {exc}") from exc
        try:
            return await asyncio.gather(*futures)
        except BrokenExecutor as exc:
            self._discard()  # not cancelling the other branches: see `_discard`
            raise PoolUnavailable(f"broken: {type(exc).__name__}: {exc or 'a worker died'}") from exc
        except BaseException:
            for future in futures:  # cancelled, or a branch failed: nothing more starts
                future.cancel()
            raise

    async def run(self, spec: DreamSpec) -> list[dict[str, Any]]:
        """The branches of `spec`, in order; PoolUnavailable if the executor cannot run them.

        One task per branch, not one per worker: the executor hands the next
        branch to whichever worker is free, which balances branches of
        unequal cost, and a cancelled job leaves only not-yet-started branches
        to cancel. Each task carries the fragments, not the prepared corpus,
        and a name for this run under which its workers keep what they prepared.
        """
        run = uuid.uuid4().hex
        return await self._submit_all(
            [(branch_process.dream_branch, (run, spec.fragments, spec.depth, spec.seed, branch))
             for branch in range(spec.branches)])

    async def ping(self) -> None:
        """A no-op on every worker (starting them): PoolUnavailable unless the pool answers.

        Right after the pool starts, a worker that is up can answer every
        no-op before a slower one has started, so more rounds go out until
        each worker has answered once (for at most `PING_WARM_S`: a slow
        worker is not a broken pool). Later pings send one round: behind a
        running job's branches, more would only make the check slow.
        """
        executor = await self._get()
        workers = getattr(executor, "_max_workers", 1)
        if self._warm:
            await self._submit_all([(branch_process.ready, ())] * workers)
            return
        deadline = asyncio.get_running_loop().time() + PING_WARM_S
        answered: set[int] = set()
        while True:
            answered.update(await self._submit_all([(branch_process.ready, ())] * workers))
            if len(answered) >= workers or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(PING_PAUSE_S)
        # Not if it broke and was replaced meanwhile, nor if a worker is still starting.
        self._warm = executor is self._executor and len(answered) >= workers

    @property
    def started(self) -> bool:
        return self._executor is not None

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
            self._warm = False


class Engines:
    """Picks the engine per job and falls back to sequential when the pool fails.

    `on_fallback(reason)` is told when parallel dreams start running
    sequentially, and `on_fallback(None)` when the pool works again.
    """

    def __init__(self, sequential: SequentialEngine, parallel: ParallelEngine,
                 on_fallback: Callable[[str | None], None]) -> None:
        self.sequential = sequential
        self.parallel = parallel
        self.on_fallback = on_fallback
        self.fallback_reason: str | None = None

    async def run(self, spec: DreamSpec, mode: Mode) -> tuple[Mode, dict[str, Any]]:
        """Dream `spec`; returns the mode actually used and the result."""
        if mode == "parallel":
            try:
                # The workers prepare the input; the host prepares it only if it falls back.
                branches = await self.parallel.run(spec)
            except PoolUnavailable as exc:
                self._fell_back(f"parallel engine {exc}; dreams run sequentially")
            else:
                self._recovered()
                return "parallel", compute.combine(branches)
        corpus = await asyncio.to_thread(compute.prepare, spec.fragments)
        return "sequential", compute.combine(await self.sequential.run(corpus, spec))

    async def check_pool(self) -> None:
        """Health: the pool answers a no-op (started only if parallel dreams are asked for)."""
        try:
            await self.parallel.ping()
        except PoolUnavailable as exc:
            self._fell_back(f"parallel engine {exc}; dreams run sequentially")
            raise
        self._recovered()

    def _fell_back(self, reason: str) -> None:
        if reason != self.fallback_reason:
            self.fallback_reason = reason
            self.on_fallback(reason)

    def _recovered(self) -> None:
        if self.fallback_reason is not None:
            self.fallback_reason = None
            self.on_fallback(None)
