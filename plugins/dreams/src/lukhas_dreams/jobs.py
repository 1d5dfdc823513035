"""The job runner: a bounded number of dream jobs at once, each cancellable,
taken from the table that every host process on the database shares.

The table is the record and the queue. The runner claims the next job from
it (`DreamStore.claim_next`: exactly one process gets each job) whenever it
has a free slot and learns there is work: at once after a submit of its own
or the end of one of its jobs, and by a cheap poll (`DREAMS_POLL_INTERVAL_S`)
for jobs queued by other processes or left by a dead one.

A claimed job carries this process's lease, renewed every third of
`DREAMS_LEASE_S`. A process that dies stops renewing; once the lease has
passed, any live process takes the job over (run once more, or failed
`interrupted` after `MAX_ATTEMPTS`). A process that starts takes over at
once the jobs of dead processes of its own node (`Incarnation.is_dead`), so
a restarted host resumes its jobs without waiting for their lease. The
renewal also tells the runner which of its jobs were deleted (by a DELETE
in any process) or taken over: their tasks are cancelled and their ends
discarded.

Fairness: the claim takes jobs round-robin over owners (`store._claimable`),
and a runner with `max_running` of 2 or more keeps its last free slot for an
owner with no job running anywhere. So one user's queue, however long, never
occupies every slot: another user's job starts at once in the kept slot, or,
when that is taken too, as soon as one running job ends, and a job's run is
bounded by its cost (`DREAMS_MAX_JOB_COST`). A lone user runs `max_running - 1`
jobs at once per process; with the sequential engine (one thread per job,
one interpreter lock) or the parallel one (every job's branches on the same
worker processes) that costs little throughput.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

import structlog

from .engine import DreamSpec, Engines
from .identity import Incarnation
from .metrics import DreamMetrics
from .models import Mode
from .store import DreamStore

__all__ = ["JobRunner"]

log = structlog.get_logger("lukhas.dreams")

#: The job counts (metric `lukhas_dream_jobs`, the queue check) are read again
#: at least this often, so other processes' changes show too.
COUNTS_REFRESH_S = 5.0


class JobRunner:
    def __init__(self, store: DreamStore, engines: Engines, metrics: DreamMetrics, *,
                 max_running: int, job_timeout_s: float, poll_interval_s: float = 1.0,
                 lease_s: float = 15.0, me: Incarnation | None = None) -> None:
        self.store = store
        self.engines = engines
        self.metrics = metrics
        self.max_running = max_running
        self.job_timeout_s = job_timeout_s
        self.poll_interval_s = poll_interval_s
        self.lease_s = lease_s
        self.me = me or Incarnation.current()
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take back this node's dead processes' jobs, claim what waits, then keep polling.

        Left-over jobs are claimed (or failed `interrupted`) before the host
        serves, so its first answers already show them taken up. The job
        counts come first: a start that finds no job queued or running (most
        do) spends that one read.
        """
        await self.metrics.refresh(self.store)
        if self.metrics.unfinished:
            try:
                for dream_id in await self.store.expire_dead(self.me):
                    log.info("dreams.runner_dead", dream_id=dream_id)
                if await self.store.has_work():  # as at each poll: a claim is a write transaction
                    await self._fill()
            except Exception:  # storage down: the poll tries again
                log.exception("dreams.start_failed")
            await self.metrics.refresh(self.store)
        self._loop = asyncio.create_task(self._poll(), name="dreams-runner")

    def submit(self, dream_id: str) -> None:
        """A job was queued here: claim it (or another) now rather than at the next poll."""
        self._wake.set()

    def cancel(self, dream_id: str) -> bool:
        """Stop a running job (its row is already gone); False if not running here.

        A job running in another process is stopped there at its next renewal."""
        task = self._running.get(dream_id)
        if task is None:
            return False
        task.cancel()
        return True

    @property
    def running(self) -> int:
        return len(self._running)

    async def stop(self) -> None:
        """Stop at once. Running jobs stay `running`; their leases end now, so a
        live process (or the next start) takes them over without waiting."""
        tasks = [*([self._loop] if self._loop else []), *self._running.values()]
        ids = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None
        if ids:
            try:
                await self.store.release(self.me.runner, ids)
            except Exception as exc:  # storage down: the leases run out by themselves
                log.warning("dreams.release_failed", reason=f"{type(exc).__name__}: {exc}")

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        renew_every = self.lease_s / 3
        next_renewal = loop.time() + renew_every
        last_counts = loop.time()
        while True:
            wait = self.poll_interval_s
            if self._running:
                wait = min(wait, max(0.0, next_renewal - loop.time()))
            woken = False
            try:
                async with asyncio.timeout(wait):
                    woken = await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                if self._running and loop.time() >= next_renewal:
                    next_renewal = loop.time() + renew_every
                    await self._renew()
                # A poll reads; only work found (or announced) costs a write transaction.
                if len(self._running) < self.max_running and (woken or await self.store.has_work(
                        newcomers_only=self._last_slot_free)):
                    await self._fill()
                if loop.time() - last_counts >= COUNTS_REFRESH_S:
                    last_counts = loop.time()
                    await self.metrics.refresh(self.store)
            except Exception as exc:  # storage down or slow: the next round tries again
                log.warning("dreams.poll_failed", reason=f"{type(exc).__name__}: {exc}")

    async def _renew(self) -> None:
        for dream_id in await self.store.renew(self.me.runner, list(self._running), self.lease_s):
            task = self._running.get(dream_id)
            if task is not None and not task.done():
                log.info("dreams.lost", dream_id=dream_id, reason="deleted or taken over")
                task.cancel()

    @property
    def _last_slot_free(self) -> bool:
        """Only the kept slot is free: it goes to an owner with no job running."""
        return self.max_running > 1 and len(self._running) == self.max_running - 1

    async def _fill(self) -> None:
        """Claim jobs while this host has free slots and jobs wait."""
        changed = False
        while len(self._running) < self.max_running:
            claim = await self.store.claim_next(self.me.runner, self.lease_s,
                                                newcomers_only=self._last_slot_free)
            for dream_id in claim.interrupted:
                log.warning("dreams.failed", dream_id=dream_id, reason="interrupted")
            changed = changed or bool(claim.interrupted)
            if claim.job is None:
                break
            dream_id, job = claim.job
            log.info("dreams.claimed", dream_id=dream_id, attempt=job["attempts"],
                     runner=self.me.runner)
            task = asyncio.create_task(self._run(dream_id, job), name=f"dream-{dream_id}")
            self._running[dream_id] = task
            task.add_done_callback(partial(self._ended, dream_id))
        if changed:
            await self.metrics.refresh(self.store)

    def _ended(self, dream_id: str, task: asyncio.Task[None]) -> None:
        if self._running.get(dream_id) is task:
            del self._running[dream_id]
        self._wake.set()  # a slot is free: claim the next job now
        if not task.cancelled() and task.exception() is not None:
            # Its end could not be stored: it stays `running` until its lease passes.
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
        if await self.store.finish(dream_id, self.me.runner, status, mode, **outcome):
            self.metrics.finished(status, mode, time.perf_counter() - started)
            log.info("dreams.finished", dream_id=dream_id, status=status, mode=mode)
        else:
            log.info("dreams.discarded", dream_id=dream_id, reason="deleted or taken over")
        await self.metrics.refresh(self.store)
