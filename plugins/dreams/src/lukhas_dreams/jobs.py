"""The job runner: a bounded number of dream jobs at once, each cancellable.

The table is the record; the in-memory queue only says which job to claim
next. A job is claimed by a conditional update, so a job deleted while
queued is skipped, and one deleted while running has its task cancelled and
its end discarded.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from .engine import DreamSpec, Engines
from .metrics import DreamMetrics
from .models import Mode
from .store import DreamStore

__all__ = ["JobRunner"]

log = structlog.get_logger("lukhas.dreams")


class JobRunner:
    def __init__(self, store: DreamStore, engines: Engines, metrics: DreamMetrics, *,
                 max_running: int, job_timeout_s: float) -> None:
        self.store = store
        self.engines = engines
        self.metrics = metrics
        self.max_running = max_running
        self.job_timeout_s = job_timeout_s
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Take over jobs a stopped host left behind, then start the workers."""
        for dream_id in await self.store.recover():
            self._queue.put_nowait(dream_id)
        await self.metrics.refresh(self.store)
        self._workers = [asyncio.create_task(self._work(), name=f"dreams-worker-{i}")
                         for i in range(self.max_running)]

    def submit(self, dream_id: str) -> None:
        self._queue.put_nowait(dream_id)

    def cancel(self, dream_id: str) -> bool:
        """Stop a running job (its row is already gone); False if not running here."""
        task = self._running.get(dream_id)
        if task is None:
            return False
        task.cancel()
        return True

    @property
    def running(self) -> int:
        return len(self._running)

    async def stop(self) -> None:
        """Stop at once; running jobs stay `running` and are resumed by the next start."""
        tasks = [*self._workers, *self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()

    async def _work(self) -> None:
        while True:
            dream_id = await self._queue.get()
            try:
                job = await self.store.claim(dream_id)
            except Exception:  # storage down: the job stays queued for the next start
                log.exception("dreams.claim_failed", dream_id=dream_id)
                continue
            if job is None:  # deleted while queued
                continue
            task = asyncio.create_task(self._run(dream_id, job), name=f"dream-{dream_id}")
            self._running[dream_id] = task
            try:
                # wait() rather than await: cancelling the job must not stop the worker.
                await asyncio.wait({task})
            finally:
                self._running.pop(dream_id, None)
            if not task.cancelled() and task.exception() is not None:
                # Its end could not be stored: it stays `running`, resumed by the next start.
                log.error("dreams.unrecorded", dream_id=dream_id, exc_info=task.exception())

    async def _run(self, dream_id: str, job: dict[str, Any]) -> None:
        spec = DreamSpec(tuple(job["fragments"]), job["branches"], job["depth"], job["seed"])
        mode: Mode = job["mode"]
        started = time.perf_counter()
        await self.metrics.refresh(self.store)
        try:
            async with asyncio.timeout(self.job_timeout_s):
                mode, result = await self.engines.run(spec, mode)
        except asyncio.CancelledError:
            self.metrics.finished("cancelled", mode, time.perf_counter() - started)
            log.info("dreams.cancelled", dream_id=dream_id)
            raise
        except Exception as exc:
            reason = (f"timed out after {self.job_timeout_s:g}s" if isinstance(exc, TimeoutError)
                      else f"{type(exc).__name__}: {exc}")
            log.warning("dreams.failed", dream_id=dream_id, reason=reason)
            await self._finish(dream_id, "failed", mode, started, error=reason)
        else:
            await self._finish(dream_id, "completed", mode, started, result=result)

    async def _finish(self, dream_id: str, status: str, mode: Mode, started: float,
                      **outcome: Any) -> None:
        if await self.store.finish(dream_id, status, mode, **outcome):
            self.metrics.finished(status, mode, time.perf_counter() - started)
            log.info("dreams.finished", dream_id=dream_id, status=status, mode=mode)
        await self.metrics.refresh(self.store)
