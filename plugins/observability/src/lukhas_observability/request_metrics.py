"""Requests by route template, method, status code and owning plugin.

Counted on every request, so counting is the cheap part and a scrape the
costly one. In one process (`HttpMetrics`) a request adds to plain numbers
in a dict, and a scrape turns them into metric families; with several
workers (`SharedHttpMetrics`) prometheus-client's Counter and Histogram
objects keep them in per-process files that any worker's scrape merges.
Both export the same families, byte for byte.

Invariants (one process):
- every series is changed only on the event loop, one observation at a time;
- a scrape or a status sample may read from another thread: it copies the
  dict and each series with one C-level copy each (no Python code runs
  inside, so the GIL makes each copy whole). A copy may miss the sum of an
  observation whose bucket it holds, never the reverse order of buckets and
  count: the count *is* the buckets' total.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["BUCKETS", "HttpMetrics", "SharedHttpMetrics", "Totals", "http_metrics"]

#: Latency buckets (seconds): fine below 100 ms, where a healthy host answers.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LABELS = ("route", "method", "status", "plugin")
LIMITED_LABELS = ("route", "method", "plugin")
_LE = (*(floatToGoString(bound) for bound in BUCKETS), "+Inf")

_REQUESTS = ("lukhas_http_requests", "HTTP requests answered, by route template, method, "
             "status code and the plugin owning the route")
_DURATION = ("lukhas_http_request_duration_seconds", "Time to answer an HTTP request, by route "
             "template, method, status code and the plugin owning the route")
_LIMITED = ("lukhas_http_rate_limited_requests", "Requests refused with 429 (rate limit or quota)")
_IN_FLIGHT = ("lukhas_http_requests_in_flight", "HTTP requests being answered now")

Labels = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class Totals:
    """One owner's requests so far: count, summed seconds, 5xx answers, and the
    cumulative count at or below each of BUCKETS (then +Inf)."""

    count: float
    seconds: float
    errors: float
    buckets: tuple[float, ...]


def http_metrics(multiprocess: MultiProcessCollector | None) -> HttpMetrics:
    """The request metrics for this process: shared through files when
    prometheus-client is in multiprocess mode (`multiprocess` given)."""
    return HttpMetrics() if multiprocess is None else SharedHttpMetrics(multiprocess)


class HttpMetrics(Collector):
    """Request metrics of one process, kept in plain numbers."""

    def __init__(self) -> None:
        self.in_flight = 0  # requests being answered now
        # Labels -> [sum of seconds, then one count per bucket of BUCKETS and +Inf].
        self._series: dict[Labels, list[float]] = {}
        self._limited: dict[tuple[str, str, str], int] = {}

    def observe(self, route: str, method: str, status: int, plugin: str, seconds: float) -> None:
        """Count one answered request."""
        key = (route, method, str(status), plugin)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [0.0] * (len(BUCKETS) + 2)
        series[1 + bisect_left(BUCKETS, seconds)] += 1  # first bound >= seconds, as prometheus-client
        series[0] += seconds
        if status == 429:
            limited = (route, method, plugin)
            self._limited[limited] = self._limited.get(limited, 0) + 1

    def _snapshot(self) -> list[tuple[Labels, tuple[float, list[float]]]]:
        """(labels, (seconds, cumulative bucket counts)) of every series."""
        snapshot = []
        for labels, series in list(self._series.items()):
            copy = series[:]
            cumulative, total = [], 0.0
            for count in copy[1:]:
                total += count
                cumulative.append(total)
            snapshot.append((labels, (copy[0], cumulative)))
        return snapshot

    def totals(self) -> dict[str, Totals]:
        """Requests so far by owning plugin."""
        by_plugin: dict[str, Totals] = {}
        for (_, _, status, plugin), (seconds, buckets) in self._snapshot():
            errors = buckets[-1] if status.startswith("5") else 0.0
            before = by_plugin.get(plugin)
            if before is not None:
                seconds += before.seconds
                errors += before.errors
                buckets = [a + b for a, b in zip(before.buckets, buckets, strict=True)]
            by_plugin[plugin] = Totals(buckets[-1], seconds, errors, tuple(buckets))
        return by_plugin

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(*_REQUESTS, labels=LABELS)
        duration = HistogramMetricFamily(*_DURATION, labels=LABELS)
        for labels, (seconds, buckets) in self._snapshot():
            requests.add_metric(labels, buckets[-1])
            duration.add_metric(labels, list(zip(_LE, buckets, strict=True)), seconds)
        limited = CounterMetricFamily(*_LIMITED, labels=LIMITED_LABELS)
        for key, count in list(self._limited.items()):
            limited.add_metric(key, count)
        yield from (requests, duration, limited)
        yield GaugeMetricFamily(*_IN_FLIGHT, value=self.in_flight)


class SharedHttpMetrics(HttpMetrics):
    """Request metrics of one of several workers, in prometheus-client's
    per-process files: a scrape by any worker sums them over all."""

    def __init__(self, multiprocess: MultiProcessCollector) -> None:
        self.requests = Counter(*_REQUESTS, LABELS, registry=None)
        self.duration = Histogram(*_DURATION, LABELS, buckets=BUCKETS, registry=None)
        self.rate_limited = Counter(*_LIMITED, LIMITED_LABELS, registry=None)
        # Each worker's own count, summed over the live workers ("livesum": a
        # dead worker answers nothing any more).
        self._in_flight_gauge = Gauge(*_IN_FLIGHT, registry=None, multiprocess_mode="livesum")
        self._multiprocess = multiprocess
        # Label children looked up once per label set: `labels()` is the costly part.
        self._children: dict[Labels, tuple[Counter, Histogram]] = {}
        self._in_flight = 0
        super().__init__()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @in_flight.setter
    def in_flight(self, value: int) -> None:
        self._in_flight = value
        self._in_flight_gauge.set(value)

    def observe(self, route: str, method: str, status: int, plugin: str, seconds: float) -> None:
        key = (route, method, str(status), plugin)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(*key), self.duration.labels(*key))
        children[0].inc()
        children[1].observe(seconds)
        if status == 429:
            self.rate_limited.labels(route, method, plugin).inc()

    def totals(self) -> dict[str, Totals]:
        """Requests so far by owning plugin, over every worker: it reads
        their files, so call it off the event loop."""
        count: dict[str, float] = {}
        seconds: dict[str, float] = {}
        errors: dict[str, float] = {}
        buckets: dict[str, dict[str, float]] = {}
        for metric in self._multiprocess.collect():
            if metric.name != _DURATION[0]:
                continue
            for sample in metric.samples:
                plugin = sample.labels["plugin"]
                if sample.name.endswith("_bucket"):
                    by_bound = buckets.setdefault(plugin, {})
                    by_bound[sample.labels["le"]] = by_bound.get(sample.labels["le"], 0.0) + sample.value
                elif sample.name.endswith("_count"):
                    count[plugin] = count.get(plugin, 0.0) + sample.value
                    if sample.labels["status"].startswith("5"):
                        errors[plugin] = errors.get(plugin, 0.0) + sample.value
                elif sample.name.endswith("_sum"):
                    seconds[plugin] = seconds.get(plugin, 0.0) + sample.value
        # Buckets keep the histogram's order: BUCKETS, then +Inf.
        return {plugin: Totals(n, seconds[plugin], errors.get(plugin, 0.0), tuple(buckets[plugin].values()))
                for plugin, n in count.items()}

    def collect(self) -> Iterator[Metric]:
        # This worker's own families: a scrape exports the merged ones in their place.
        yield from self.requests.collect()
        yield from self.duration.collect()
        yield from self.rate_limited.collect()
        yield from self._in_flight_gauge.collect()
