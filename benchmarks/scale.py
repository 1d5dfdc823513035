"""Scale: a dreams page and a bind on PostgreSQL with 1 and 2 worker processes.

- A throwaway PostgreSQL server on 127.0.0.1 (`lukhas_kernel.testing.local_postgres`:
  `initdb` + `pg_ctl` on a temporary directory, fsync off, as user `postgres`
  when run as root), one fresh database per host.
- Two real `lukhas serve` hosts on it, one with `LUKHAS_WORKERS=1` (one
  process) and one with `LUKHAS_WORKERS=2` (a supervisor and two worker
  processes sharing one listening socket), every installed plugin on, the
  per-caller rate limits lifted as in `routes` (one load generator is one
  caller). Each host's database is its own, seeded the same way: 25 completed
  tiny dreams of the admin, so `GET /api/v1/dreams/list` answers a full page
  of 20 from PostgreSQL; `POST /api/v1/glyphs/bind` writes a binding and its
  audit entry (hash chain, a table lock) per request.
- Reference: `bare_app.py` (one process, constant bodies of the same shape),
  sent the same requests in the same run.
- Load: per route, a 1 s warm-up against each server, then RUNS rounds of one
  `wrk -t2 -c64 -d5s` run against each server in turn (bare, 1 worker,
  2 workers), so noise falls on all alike; each figure is the median over the
  rounds. Figures: requests/s with 1 and with 2 workers, and the scaling
  ratio (2 workers / 1 worker). Targets: ≥ 1.6× for reads, ≥ 1.5× for binds
  (the performance issue's: the audit chain's appends batched, not
  serialised on a table lock).
- Nothing is pinned here, unlike the other load modules: two workers need
  both cores. On 2 cores the load generator (wrk, 2 threads), PostgreSQL and
  the workers share the CPU: two workers can use at most what wrk and
  PostgreSQL leave.
"""

from __future__ import annotations

from pathlib import Path

from lukhas_kernel.testing import LocalPostgres, local_postgres

from ._common import BenchError, Figure, median, progress
from ._servers import Server, start_bare, start_lukhas
from ._wrk import Load, load_test, measure_all
from .routes import BIND_BODY, SETTINGS, Endpoint, check_plugins, expect, post_script, seed_dreams

__all__ = ["run"]

WORKER_COUNTS = (1, 2)
CONNECTIONS = 64
DURATION_S = 5
WARMUP_S = 1
RUNS = 3
MAX_FAILED_SHARE = 0.01
TARGET_READ_SCALING = 1.6
TARGET_BIND_SCALING = 1.5
ENDPOINTS = (
    Endpoint("GET /api/v1/dreams/list", "/api/v1/dreams/list"),
    Endpoint("POST /api/v1/glyphs/bind", "/api/v1/glyphs/bind", BIND_BODY, 201),
)


def _start(tmp: Path, postgres: LocalPostgres, workers: int) -> Server:
    """A host with `workers` processes on a fresh PostgreSQL database, its data prepared."""
    database = postgres.create_database(f"bench_w{workers}")
    server = start_lukhas(tmp / f"workers-{workers}", {
        **SETTINGS,
        "LUKHAS_DATABASE_URL": postgres.url(database),
        "LUKHAS_WORKERS": str(workers),
    }, pinned=False)
    server.label = f"lukhas, {workers} worker{'s' if workers > 1 else ''}"
    check_plugins(server)
    seed_dreams(server)
    page = expect(server, "GET", "/api/v1/dreams/list", 200)
    if len(page["items"]) != 20 or page["next_cursor"] is None:
        raise BenchError(f"{server.label}: the dreams page is not full: {len(page['items'])} items")
    for endpoint in ENDPOINTS:
        expect(server, endpoint.method, endpoint.path, endpoint.status, endpoint.body)
    return server


def run() -> list[Figure]:
    """Measure; see the module docstring for exactly what."""
    figures: list[Figure] = []
    with load_test() as (tmp, servers), local_postgres() as postgres:
        hosts = []
        for workers in WORKER_COUNTS:
            servers.append(host := _start(tmp, postgres, workers))
            hosts.append(host)
        servers.append(bare := start_bare(tmp, hosts[0].headers, pinned=False))
        for endpoint in ENDPOINTS:
            progress(f"{endpoint.name}: wrk -c{CONNECTIONS} -d{DURATION_S}s, {RUNS} rounds")
            loads = measure_all([bare, *hosts], RUNS, endpoint.path, post_script(tmp, endpoint),
                                connections=CONNECTIONS, duration_s=DURATION_S, warmup_s=WARMUP_S,
                                max_non_2xx_share=MAX_FAILED_SHARE)
            bare_rps, *rps = (median([load.rps for load in runs]) for runs in loads)
            figures += _figures(endpoint, bare_rps, rps, loads[1:])
    return figures


def _figures(endpoint: Endpoint, bare_rps: float, rps: list[float], loads: list[list[Load]]) -> list[Figure]:
    one, two = rps
    is_read = endpoint.method == "GET"
    p50 = [median([load.p50_ms for load in runs]) for runs in loads]
    progress(f"{endpoint.name}: 1 worker {one:.0f} req/s, 2 workers {two:.0f} req/s "
             f"({two / one:.2f}×), bare {bare_rps:.0f} req/s")
    return [
        Figure(f"{endpoint.name} on PostgreSQL, 1 worker, requests/s", one, "req/s",
               reference=bare_rps, higher_is_better=True),
        Figure(f"{endpoint.name} on PostgreSQL, 2 workers, requests/s", two, "req/s",
               reference=bare_rps, higher_is_better=True),
        Figure(f"{endpoint.name}, 2 workers, p50 latency", p50[1], "ms", reference=p50[0]),
        Figure(f"{endpoint.name}, scaling 2 workers / 1 worker", two / one, "×",
               target=TARGET_READ_SCALING if is_read else TARGET_BIND_SCALING, higher_is_better=True),
    ]
