"""Prometheus metrics of the vivox plugin, exported by the observability plugin."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["VivoxMetrics"]


class VivoxMetrics:
    """Unregistered metrics (one set per host); `collectors` hands them out."""

    def __init__(self) -> None:
        self.cache = Counter("lukhas_drift_cache_lookups", "Drift metrics cache lookups",
                             ["result"], registry=None)
        # Looked up once: `labels()` costs more than the increment, on every read.
        self.cache_hits = self.cache.labels(result="hit")
        self.cache_misses = self.cache.labels(result="miss")
        self.compute_seconds = Histogram(
            "lukhas_drift_compute_seconds", "Time to compute a user's drift metrics",
            registry=None, buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1))

    @property
    def collectors(self) -> list[Counter | Histogram]:
        return [self.cache, self.compute_seconds]
