"""The two dream engines behind one interface, and the fallback between them.

Both run the same pure function, `compute.dream_branch`, once per branch, so
the same seed and input give the same dream whichever engine runs it. Neither
computes on the event loop: the sequential engine runs branches one after
another on a worker thread, the parallel one on an executor of processes.
A job is cancelled by cancelling its task: no further branch starts and
branches still pending on the executor are cancelled with it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import compute
from .models import Mode

__all__ = ["DreamSpec", "Engines", "ParallelEngine", "PoolUnavailable", "SequentialEngine",
           "process_pool"]


@dataclass(frozen=True)
class DreamSpec:
    fragments: tuple[str, ...]
    branches: int
    depth: int
    seed: int


class PoolUnavailable(Exception):
    """The parallel engine's executor cannot start or has broken."""


def process_pool(workers: int | None) -> ProcessPoolExecutor:
    """The default parallel executor.

    Worker processes are spawned, not forked: the host runs threads (the
    database driver's, the sequential engine's), and forking a threaded
    process can copy a held lock into the child.
    """
    return ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1,
                               mp_context=multiprocessing.get_context("spawn"))


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

    Any `concurrent.futures.Executor` works (a distributed one included); it is
    made by `factory` on first use and made again after it broke.
    """

    mode: Mode = "parallel"

    def __init__(self, factory: Callable[[], Executor]) -> None:
        self.factory = factory
        self._executor: Executor | None = None

    def _get(self) -> Executor:
        if self._executor is None:
            try:
                self._executor = self.factory()
            except Exception as exc:
                raise PoolUnavailable(f"cannot start: {type(exc).__name__}: {exc}") from exc
        return self._executor

    def _discard(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _submit_all(self, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
        executor = self._get()
        try:
            futures = [asyncio.wrap_future(executor.submit(fn, *args)) for fn, args in calls]
        except (BrokenExecutor, RuntimeError, OSError) as exc:  # RuntimeError: shut down
            self._discard()
            raise PoolUnavailable(f"broken: {type(exc).__name__}: {exc}") from exc
        try:
            return await asyncio.gather(*futures)
        except BrokenExecutor as exc:
            self._discard()
            raise PoolUnavailable(f"broken: {type(exc).__name__}: {exc or 'a worker died'}") from exc
        finally:
            for future in futures:  # cancelled or failed: nothing more starts
                future.cancel()

    async def run(self, corpus: compute.Corpus, spec: DreamSpec) -> list[dict[str, Any]]:
        return await self._submit_all(
            [(compute.dream_branch, (corpus, spec.depth, spec.seed, branch))
             for branch in range(spec.branches)])

    async def ping(self) -> None:
        """A no-op on every worker (starting them): PoolUnavailable unless the pool answers."""
        workers = getattr(self._get(), "_max_workers", 1)
        await self._submit_all([(os.getpid, ())] * workers)

    @property
    def started(self) -> bool:
        return self._executor is not None

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


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
        corpus = await asyncio.to_thread(compute.prepare, spec.fragments)
        if mode == "parallel":
            try:
                branches = await self.parallel.run(corpus, spec)
            except PoolUnavailable as exc:
                self._fell_back(f"parallel engine {exc}; dreams run sequentially")
            else:
                self._recovered()
                return "parallel", compute.combine(branches)
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
