"""Prometheus metrics of the dreams plugin, exported by the observability plugin.

Jobs by status are read from the table (after every change of this host's
jobs, and at least every 5 s while it polls for jobs), so they count every
host's jobs; durations are this process's own (summed over the workers of
`lukhas serve --workers N` by the observability plugin).
"""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .models import Mode
from .store import DreamStore

__all__ = ["DreamMetrics"]

log = structlog.get_logger("lukhas.dreams")


class DreamMetrics(Collector):
    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._queue_depth = 0
        self.duration = Histogram(
            "lukhas_dream_job_duration_seconds",
            "Run time of dream jobs, by the mode that ran them and how they ended",
            ["mode", "status"], registry=None,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))

    async def refresh(self, store: DreamStore) -> None:
        try:
            counts = await store.counts()
        except Exception as exc:  # metrics never fail a job; the next change retries
            log.warning("dreams.metrics_stale", reason=f"{type(exc).__name__}: {exc}")
            return
        self._counts = counts
        self._queue_depth = sum(n for (status, _), n in counts.items() if status == "queued")

    def finished(self, status: str, mode: Mode, seconds: float) -> None:
        self.duration.labels(mode=mode, status=status).observe(seconds)

    @property
    def queue_depth(self) -> int:
        return self._queue_depth

    @property
    def unfinished(self) -> int:
        """Jobs queued or running, as last counted."""
        return sum(n for (status, _), n in self._counts.items() if status in ("queued", "running"))

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("lukhas_dream_jobs", "Dream jobs stored, by status and mode",
                                 labels=["status", "mode"])
        for (status, mode), n in sorted(self._counts.items()):
            jobs.add_metric([status, mode], n)
        yield jobs
        yield from self.duration.collect()
