"""Retries with backoff of a plugin's failed migrate, setup or startup stage.

Attempt n+1 is due `base × 2^(n−1)` seconds (capped) after attempt n failed;
it runs in the background while the host serves. Import and register
failures are never retried: they need a new install.

Invariant: at most one retry task exists per plugin; `due` holds exactly
the plugins whose task is still waiting (not yet running its attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .._core.settings import KernelSettings

__all__ = ["RetryPolicy", "Retries"]

@dataclass(frozen=True)
class RetryPolicy:
    retries: int
    base_s: float
    max_s: float

    @classmethod
    def of(cls, settings: KernelSettings) -> RetryPolicy:
        return cls(settings.plugin_retries, settings.plugin_retry_base_s, settings.plugin_retry_max_s)

    @property
    def attempts(self) -> int:
        """Every attempt, the first included."""
        return 1 + self.retries

    def delay_s(self, failed: int) -> float:
        """The wait after the `failed`-th failed attempt."""
        return min(self.base_s * 2.0 ** (failed - 1), self.max_s)


class Retries:
    """The scheduled retries; `attempt(name)` runs one when it is due."""

    def __init__(self, policy: RetryPolicy, attempt: Callable[[str], Awaitable[None]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._attempt = attempt
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.due: dict[str, float] = {}

    def schedule(self, name: str, delay_s: float) -> None:
        """Run `attempt(name)` after `delay_s`, replacing any retry waiting.

        Called from within a running attempt for its next one: that task
        ends right after, so the new one replaces it in `_tasks`."""
        self.cancel(name)
        self.due[name] = self._clock() + delay_s
        self._tasks[name] = asyncio.create_task(self._run(name, delay_s), name=f"lukhas-retry-{name}")

    async def _run(self, name: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        # From here on the attempt is running: it is no longer "scheduled", so
        # a restart asked for now is refused rather than cancelling it midway.
        self.due.pop(name, None)
        try:
            await self._attempt(name)
        finally:
            if self._tasks.get(name) is asyncio.current_task():
                del self._tasks[name]

    def cancel(self, name: str) -> None:
        """Forget the retry scheduled for `name`, if it is still waiting."""
        if self.due.pop(name, None) is not None:
            self._tasks.pop(name).cancel()

    def retry_after_s(self, name: str) -> int:
        """Whole seconds until `name`'s next attempt (at least 1)."""
        due = self.due.get(name)
        return max(1, math.ceil(due - self._clock())) if due is not None else 1

    async def close(self) -> None:
        """Cancel every retry, waiting or running, and wait for them to end."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        self.due.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
