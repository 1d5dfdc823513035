"""Observability: what the metrics middleware costs on a trivial authenticated route.

- Three real `lukhas serve` processes on 127.0.0.1, each with a fresh data
  directory, every installed plugin and `LUKHAS_LOG_LEVEL=warning`, as
  auth_throughput starts them:
  - *without*: `OBSERVABILITY_ENABLED=false`, so the plugin is never imported
    and no middleware of it is in the request path;
  - *with*: observability on. Its request log events are at `info`, below the
    host's level, so this is the metrics middleware alone (plus a log call
    that the level filter drops);
  - *with logs*: observability on and `OBSERVABILITY_REQUEST_LOG_LEVEL=warning`,
    so every request also writes its JSON log line (to a file).
- Reference: `bare_app.py`, a bare aiohttp handler for the same path.
- Load: `GET /api/v1/plugins` with the first admin's token (the route
  auth_throughput measures), `wrk -t1 -c64 -d10s --latency` after a 2 s
  warm-up against each, 3 rounds of one run per server in turn; medians.
  Servers and wrk pinned to separate cores, as in auth_throughput.
  Target: with / without ≥ 0.90 in requests/s.
- Then, on the *with* host after its load (every series populated): 50
  sequential `GET /metrics`, median time and the exposition's size.
"""

from __future__ import annotations

import time

from ._common import BenchError, Figure, http_get, median, progress
from ._servers import start_bare, start_lukhas
from ._wrk import load_test, measure_all, median_of
from .auth_throughput import PATH, verify

__all__ = ["run"]

PINNED = True  # servers on one CPU, wrk on another (see _servers.spawn, _wrk.wrk)
RUNS = 3

TARGET_RATIO = 0.90
SCRAPES = 50


def _scrape(port: int) -> tuple[float, int]:
    """Median ms of SCRAPES sequential `GET /metrics`, and the last body's size in bytes."""
    times, size = [], 0
    for _ in range(SCRAPES):
        started = time.perf_counter()
        status, body = http_get(port, "/metrics")
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise BenchError(f"GET /metrics answered {status}: {body[:200]!r}")
        size = len(body)
    return median(times), size


def run() -> list[Figure]:
    """Measure; see the module docstring for exactly what."""
    with load_test() as (tmp, servers):
        for label, settings in (("without", {"OBSERVABILITY_ENABLED": "false"}),
                                ("with", {}),
                                ("with logs", {"OBSERVABILITY_REQUEST_LOG_LEVEL": "warning"})):
            server = start_lukhas(tmp / label.replace(" ", "-"), settings)
            server.label = f"lukhas {label} observability"
            servers.append(server)
        without, with_metrics, with_logs = servers
        servers.append(bare := start_bare(tmp, without.headers))
        for server in (without, with_metrics, with_logs):
            verify(server, bare)
        status, _ = http_get(without.port, "/metrics")
        if status != 403:
            raise BenchError(f"observability disabled, GET /metrics answered {status}, not 403")
        runs = measure_all([bare, without, with_metrics, with_logs], RUNS, PATH)
        scrape_ms, scrape_bytes = _scrape(with_metrics.port)
        logged = (with_logs.workdir / "stderr.log").read_text(errors="replace").count('"http.request"')
        progress(f"with logs: {logged} request log lines written")
        if logged == 0:
            raise BenchError("the host with request logs wrote no http.request event")

    bare_runs, without_runs, with_runs, logs_runs = runs
    without_rps, with_rps = median_of(without_runs, "rps"), median_of(with_runs, "rps")
    without_cpu = median_of(without_runs, "cpu_us_per_request")
    with_cpu = median_of(with_runs, "cpu_us_per_request")
    return [
        Figure(f"GET {PATH} (auth) with observability, requests/s", with_rps, "req/s",
               reference=without_rps, higher_is_better=True),
        Figure("requests/s, with / without observability", with_rps / without_rps, "×",
               target=TARGET_RATIO, higher_is_better=True),
        Figure("server CPU per request, with observability", with_cpu, "µs", reference=without_cpu),
        Figure("metrics middleware, CPU per request", with_cpu - without_cpu, "µs"),
        Figure("p99 latency, with observability", median_of(with_runs, "p99_ms"), "ms",
               reference=median_of(without_runs, "p99_ms")),
        Figure("with observability and request logs, requests/s", median_of(logs_runs, "rps"), "req/s",
               reference=without_rps, higher_is_better=True),
        Figure("without observability, requests/s", without_rps, "req/s",
               reference=median_of(bare_runs, "rps"), higher_is_better=True),
        Figure("GET /metrics after the load, median", scrape_ms, "ms"),
        Figure("GET /metrics size", scrape_bytes / 1000, "kB"),
        Figure("non-2xx answers, all measured runs", sum(load.non_2xx for load in with_runs + logs_runs),
               "answers", target=0),
    ]
