"""Prometheus metrics of the glyphs plugin, exported by the observability plugin."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["GlyphMetrics"]


class GlyphMetrics(Collector):
    """Binds and validations counted by this host; active bindings from the table."""

    def __init__(self) -> None:
        self.binds = Counter("lukhas_glyph_binds", "GLYPH bindings created", registry=None)
        self.validations = Counter("lukhas_glyph_validations", "GLYPH token validations, by result",
                                   ["result"], registry=None)
        # Each result's series, looked up once: `labels()` costs more than the
        # increment, on every validation. Results are a handful of fixed words.
        self._by_result: dict[str, Counter] = {}
        self.active = 0  # refreshed after every bind and delete, and by the health check

    def validated(self, result: str) -> None:
        """Count one validation with `result` ("valid" or the reason it failed)."""
        series = self._by_result.get(result)
        if series is None:
            series = self._by_result[result] = self.validations.labels(result=result)
        series.inc()

    def collect(self) -> Iterator[Metric]:
        yield from self.binds.collect()
        yield from self.validations.collect()
        yield GaugeMetricFamily("lukhas_glyph_active_bindings",
                                "Bindings neither revoked nor expired", value=self.active)
