"""The host's Prometheus metrics: kernel facts, and one scrape of it all
(the request metrics are in `request_metrics.py`).

Multiprocess mode (`lukhas serve --workers N`, N > 1: PROMETHEUS_MULTIPROC_DIR
set before prometheus-client was imported): every Counter, Histogram and Gauge
object of every plugin keeps its values in per-process files, and a scrape,
answered by any worker, exports each such family as merged over every worker
(`MultiProcessCollector`): counters and histograms summed, dead workers' counts
included (totals never go down). Families counted in the shared database
(dream jobs by status, active bindings) or taken from the kernel's view
(plugin info and state: the same plugins and settings in every worker, flags
followed within about 1 s; health checks; circuit breakers, which each worker
keeps for itself) come from the answering worker once,
never summed; per-process gauges are Gauge objects with a deliberate mode
(requests in flight "livesum", start-up times "livemax"); process_* are left
out (see the plugin's set-up).

Invariants:
- every label value is drawn from a bounded set: route templates (never raw
  paths), a fixed list of methods, status codes (three digits, as answered:
  "200", "503") and plugin names;
- a scrape is built on the event loop from snapshots, then encoded in a
  worker thread; nothing it reads there is changed by the loop except
  thread-safe metric values, whole-object replacements and the request
  metrics, which copy what they read (see `request_metrics.py`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import structlog
from lukhas_kernel import PluginState, PluginView
from prometheus_client import Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = ["Scrape", "StartupGauge", "multiprocess_collector", "plugin_families"]

log = structlog.get_logger("lukhas.observability")

_STATES = [state for state in PluginState if state is not PluginState.PENDING]
#: `lukhas_plugin_breaker_state` values, as the breaker's states are named in `/api/v1/plugins`.
_BREAKER_STATES = {"closed": 0, "open": 1, "half_open": 2}


def multiprocess_collector() -> MultiProcessCollector | None:
    """The collector merging every worker's files, in multiprocess mode; else None.

    prometheus-client chose its mode when first imported, from the same
    variable: read here, it tells which mode this process is in.
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return MultiProcessCollector(None, path=path) if path else None


def plugin_families(plugins: Iterable[PluginView]) -> Iterator[Metric]:
    """The kernel's facts about every discovered plugin, as metric families."""
    info = InfoMetricFamily("lukhas_plugin", "Each discovered plugin's version and distribution",
                            labels=["plugin"])
    state = GaugeMetricFamily("lukhas_plugin_state", "1 for the state each plugin is in, 0 for the others",
                              labels=["plugin", "state"])
    startup = GaugeMetricFamily("lukhas_plugin_startup_seconds",
                                "Time each plugin took in each start-up stage", labels=["plugin", "stage"])
    check_seconds = GaugeMetricFamily("lukhas_plugin_health_check_duration_seconds",
                                      "How long each health check took at its last run",
                                      labels=["plugin", "check"])
    check_passed = GaugeMetricFamily("lukhas_plugin_health_check_passed",
                                     "1 if the health check passed at its last run, else 0",
                                     labels=["plugin", "check"])
    breaker = GaugeMetricFamily("lukhas_plugin_breaker_state",
                                "Each plugin's circuit breaker: 0 closed, 1 open, 2 half open",
                                labels=["plugin"])
    opened = CounterMetricFamily("lukhas_plugin_breaker_opened",
                                 "How often each plugin's circuit breaker opened", labels=["plugin"])
    for plugin in plugins:
        breaker.add_metric([plugin.name], _BREAKER_STATES.get(plugin.breaker, 0))
        opened.add_metric([plugin.name], plugin.breaker_opened)
        info.add_metric([plugin.name], {"version": plugin.version or "",
                                        "distribution": plugin.distribution or ""})
        for candidate in _STATES:
            state.add_metric([plugin.name, candidate.value], float(plugin.state is candidate))
        for stage, ms in plugin.stages_ms.items():
            startup.add_metric([plugin.name, stage], ms / 1000)
        for check, result in plugin.health_checks.items():
            check_seconds.add_metric([plugin.name, check], result.ms / 1000)
            check_passed.add_metric([plugin.name, check], float(result.passed))
    yield from (info, state, startup, check_seconds, check_passed, breaker, opened)


class StartupGauge:
    """Multiprocess mode: every worker's start-up times, so that a scrape shows
    the slowest live worker's time for each plugin and stage ("livemax")
    rather than whichever worker answered. Outside it, the kernel's facts are
    this one process's and nothing is needed."""

    def __init__(self) -> None:
        self.gauge = Gauge("lukhas_plugin_startup_seconds", "Time each plugin took in each start-up stage",
                           ["plugin", "stage"], registry=None, multiprocess_mode="livemax")

    def record(self, plugins: Iterable[PluginView]) -> None:
        """Write this worker's times (they change only during start-up)."""
        for plugin in plugins:
            for stage, ms in plugin.stages_ms.items():
                self.gauge.labels(plugin.name, stage).set(ms / 1000)


class Scrape(Collector):
    """What one `GET /metrics` exports: the kernel's facts about plugins, then
    every serving plugin's own collectors (observability's among them).

    In multiprocess mode a family that every worker writes to its files
    (Counter, Histogram and Gauge objects) is exported merged over the
    workers in place of this worker's own: only families the serving
    plugins export now, so a disabled plugin still leaves nothing behind.

    A plugin whose collector raises is left out of this scrape, and a family
    whose name was already exported is dropped, each with a warning: one
    plugin's fault never spoils the exposition. `first` (the exporting
    plugin) is collected before the others, so its names always win.
    """

    def __init__(self, plugins: list[PluginView], collectors: dict[str, list[Collector]], first: str,
                 multiprocess: MultiProcessCollector | None = None) -> None:
        self._plugins = plugins
        self._collectors = sorted(collectors.items(), key=lambda item: item[0] != first)
        self._multiprocess = multiprocess

    def collect(self) -> Iterator[Metric]:
        # Read here, in the encoding thread: the files of every worker.
        merged = {m.name: m for m in self._multiprocess.collect()} if self._multiprocess else {}
        families = [merged.get(family.name, family) for family in plugin_families(self._plugins)]
        seen = {family.name for family in families}
        yield from families
        for plugin, collectors in self._collectors:
            try:
                # Whole before yielding: a collector failing halfway adds nothing.
                families = [family for collector in collectors for family in collector.collect()]
            except Exception as exc:
                log.warning("observability.collector_failed", plugin=plugin,
                            reason=f"{type(exc).__name__}: {exc}"[:300])
                continue
            for family in families:
                if family.name in seen:
                    log.warning("observability.duplicate_metric", plugin=plugin, metric=family.name)
                    continue
                seen.add(family.name)
                yield merged.get(family.name, family)
