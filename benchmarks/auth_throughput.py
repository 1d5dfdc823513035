"""Throughput: an authenticated `GET /api/v1/plugins` under load, against bare aiohttp.

- Lukhas: a real `python -m lukhas_kernel serve` process on 127.0.0.1 with a
  fresh data directory (`LUKHAS_DATA_DIR`), JSON logs at level `warning`, the
  plugins installed in the venv and nothing else. The first start creates the
  admin user and prints its token on stdout; every request carries it as
  `Authorization: Bearer <token>`, so each one passes the whole middleware
  chain and bearer authentication. `/api/v1/plugins` is the most trivial
  authenticated kernel route: a small JSON document built from memory, no
  plugin hooks, no rate limit, and no database query while the token is in the
  auth cache. The cache keeps its default TTL (`LUKHAS_AUTH_CACHE_TTL_S`, 5 s),
  as in production, so a 10 s run includes the lookups after it expires.
- Reference: `bare_app.py`, a bare aiohttp handler answering the same path with
  the same small JSON body (no middleware, no authentication), in its own
  process, sent the same requests (the `Authorization` header included).
- Load: `wrk -t1 -c64 -d10s --latency` from a separate process, 127.0.0.1 only,
  after a 2 s warm-up run against each server. Runs alternate (bare, lukhas,
  bare, lukhas, ...) so that noise on a shared machine falls on both alike; each
  figure is the median over the runs; target: Lukhas / bare ≥ 0.65 in
  requests/s (the performance issue's). Before measuring, the authenticated
  request must answer 200 and the same request without a token 401 (so the
  real auth path is measured). A run with more than 0.1 % non-2xx answers
  fails; fewer are reported (a figure with target 0) but do not stop the run.
- Pinning: with two or more CPUs, each server runs on the first (with every
  thread and process it starts) and wrk, one thread, on the second, so the
  load generator never takes CPU time from the server it measures and a
  figure is what one core serves. With one CPU, nothing is pinned and wrk
  runs 2 threads beside the server. The ratio to bare aiohttp, measured under
  the same conditions in the same run, is the figure that matters. *Server
  CPU per request* (the server process's user + system CPU time over the run
  divided by its requests) is less sensitive to what else runs.
"""

from __future__ import annotations

import json

from ._common import BenchError, Figure, http_get, pinning, progress
from ._servers import Server, start_bare, start_lukhas
from ._wrk import Load, load_test, measure_all, median_of

__all__ = ["PATH", "run", "verify"]

PINNED = True  # servers on one CPU, wrk on another (see _servers.spawn, _wrk.wrk)

PATH = "/api/v1/plugins"
CONNECTIONS = 64
DURATION_S = 10
WARMUP_S = 2
RUNS = 3
TARGET_RPS_RATIO = 0.65


def verify(lukhas: Server, bare: Server) -> None:
    """Both answer the measured request with 200 and a small JSON body; Lukhas
    answers 401 without the token and with a wrong one."""
    for server in (lukhas, bare):
        status, body = http_get(server.port, PATH, server.headers)
        if status != 200:
            raise BenchError(f"{server.label}: GET {PATH} with the token answered {status}: {body[:200]!r}")
        try:
            json.loads(body)
        except ValueError:
            raise BenchError(f"{server.label}: GET {PATH} answered non-JSON {body[:200]!r}") from None
        shown = body[:100].decode(errors="replace")
        progress(f"{server.label}: GET {PATH} → 200, {len(body)} bytes: {shown}")
    wrong = {"Authorization": "Bearer lk_" + "A" * 43}
    for headers, what in (({}, "without a token"), (wrong, "with an unknown token")):
        status, body = http_get(lukhas.port, PATH, headers)
        if status != 401:
            raise BenchError(f"lukhas: GET {PATH} {what} answered {status}, not 401: {body[:200]!r}")
    progress(f"lukhas: GET {PATH} without a token and with an unknown one → 401")


def measure(lukhas: Server, bare: Server) -> tuple[list[Load], list[Load]]:
    """A warm-up run against each, then RUNS alternating measured runs each."""
    bare_runs, lukhas_runs = measure_all([bare, lukhas], RUNS, PATH, connections=CONNECTIONS,
                                         duration_s=DURATION_S, warmup_s=WARMUP_S)
    return lukhas_runs, bare_runs


# -- the module's figures --------------------------------------------------------


def run() -> list[Figure]:
    """Measure throughput; see the module docstring for what exactly."""
    with load_test() as (tmp, servers):
        servers.append(lukhas := start_lukhas(tmp))
        servers.append(bare := start_bare(tmp, lukhas.headers))
        verify(lukhas, bare)
        progress(f"wrk -c{CONNECTIONS} -d{DURATION_S}s --latency, "
                 f"{RUNS} runs each, alternating bare and lukhas ({pinning() or 'unpinned'})")
        lukhas_runs, bare_runs = measure(lukhas, bare)

    lukhas_rps, bare_rps = median_of(lukhas_runs, "rps"), median_of(bare_runs, "rps")
    return [
        Figure(f"GET {PATH} (auth), requests/s", lukhas_rps, "req/s",
               reference=bare_rps, higher_is_better=True),
        Figure("requests/s, lukhas / bare aiohttp", lukhas_rps / bare_rps, "×",
               target=TARGET_RPS_RATIO, higher_is_better=True),
        Figure("p99 latency", median_of(lukhas_runs, "p99_ms"), "ms",
               reference=median_of(bare_runs, "p99_ms")),
        Figure("p50 latency", median_of(lukhas_runs, "p50_ms"), "ms",
               reference=median_of(bare_runs, "p50_ms")),
        Figure("server CPU per request", median_of(lukhas_runs, "cpu_us_per_request"), "µs",
               reference=median_of(bare_runs, "cpu_us_per_request")),
        Figure("non-2xx answers, all measured runs", sum(load.non_2xx for load in lukhas_runs), "answers",
               target=0, reference=sum(load.non_2xx for load in bare_runs)),
    ]
