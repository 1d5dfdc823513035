"""DB routes: four database routes at 64 connections against hand-written code and FastAPI.

- Lukhas: one real `lukhas serve` on a migrated SQLite database, prepared as
  in `routes` (every plugin on, rate limits lifted, 25 completed dreams of
  the admin, a user with 1,000 interactions, a GLYPH token); every request
  carries the first admin's token.
- Peers, each its own process on the same database file and signing key,
  started after the data was seeded:
  - *hand-written ref* (`reference_app.py`): aiohttp and stdlib `sqlite3`, the
    same token check, queries and JSON bytes; reads on the loop's thread,
    writes on one writer thread, one fsync per bind (`synchronous=FULL`);
  - *FastAPI* (`fastapi_app.py`): FastAPI on uvicorn (uvloop, httptools),
    `def` endpoints in its thread pool on stdlib `sqlite3`, pydantic models;
  - *bare aiohttp* (`bare_app.py`): constant bodies, the floor of what
    Python and aiohttp cost.
  Both references cache what Lukhas caches by default, for as long (a
  token's user 5 s, drift metrics 300 s, a binding 5 s): a drift read is a
  cache hit on every side.
- Before measuring, each reference must answer as Lukhas does, else the
  module stops with the difference: the same status and the very same body
  bytes for the dreams page, the drift metrics and a validation; for a bind
  (new ids and times) the same keys in the same order and the same values
  for the rest, a token Lukhas validates (the binding the peer stored, as
  the peer answered it), and the signature Lukhas's token would get from the
  peer's signer, byte for byte. Without a token each answers 401.
- Load: per route, a 1 s warm-up against each server, then ROUNDS rounds of
  one `wrk -c64 -d4s --latency` run against each in turn (Lukhas, ref,
  FastAPI, bare): interleaved, so noise falls on all alike. Each server is
  pinned to the first CPU with all it starts, wrk (one thread) to the
  second. Figures are medians over the rounds; a ratio is the ratio of the
  medians. CPU per request is the server's user + system time over a run
  (from /proc) divided by its requests.
- After the binds, `lukhas glyphs audit-verify` must find the audit chain
  that Lukhas and both peers appended to intact.
- Targets (the performance issue's, ratios measured in one run): Lukhas /
  hand-written ref ≥ 0.6× for the dreams page, the drift read and a
  validation, ≥ 1.2× for binds (group commit against one fsync per bind);
  dreams page Lukhas / FastAPI ≥ 2×; ≥ 2,500 binds/s on one core.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ._common import BenchError, Figure, median, pinning, progress
from ._peer_checks import check_answers
from ._servers import Server, lukhas_cli, start_bare, start_lukhas, start_peer
from ._wrk import Load, load_test, measure_all
from .routes import SETTINGS, Endpoint, post_script, prepare

__all__ = ["run"]

PINNED = True  # servers on one CPU, wrk on another (see _servers.spawn, _wrk.wrk)
CONNECTIONS = 64
ROUNDS = 5
DURATION_S = 4
WARMUP_S = 1
MAX_NON_2XX_SHARE = 0.001
#: Per route: Lukhas / hand-written ref, and Lukhas / FastAPI (requests/s), targets.
TARGET_RATIOS: dict[str, tuple[float, float | None]] = {
    "GET /api/v1/dreams/list": (0.6, 2.0),
    "GET /api/v1/drift/{user_id}": (0.6, None),
    "POST /api/v1/glyphs/bind": (1.2, None),
    "POST /api/v1/glyphs/validate": (0.6, None),
}
TARGET_BINDS_PER_S = 2500.0
BIND = "POST /api/v1/glyphs/bind"
PEERS = (("hand-written ref", "benchmarks.reference_app"), ("FastAPI + uvicorn", "benchmarks.fastapi_app"))


def _require_fastapi() -> None:
    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise BenchError(f"{' and '.join(missing)} not installed: `make bench` installs them "
                         "(.venv/bin/pip install --group bench)")


def _start_peers(tmp: Path, lukhas: Server) -> list[Server]:
    """The two references on `lukhas`'s data directory, then bare aiohttp."""
    data_dir = lukhas.workdir / "data"
    peers = [start_peer(tmp, label, [sys.executable, "-m", module, "{port}", str(data_dir)], lukhas.headers)
             for label, module in PEERS]
    return [*peers, start_bare(tmp, lukhas.headers)]


def _measure(tmp: Path, endpoints: list[Endpoint], servers: list[Server]) -> dict[str, list[list[Load]]]:
    """Every route, ROUNDS interleaved rounds; runs by route, then by server."""
    loads = {}
    for endpoint in endpoints:
        progress(f"{endpoint.name}: wrk -c{CONNECTIONS} -d{DURATION_S}s, {ROUNDS} rounds "
                 f"({pinning() or 'unpinned'})")
        loads[endpoint.name] = measure_all(
            servers, ROUNDS, endpoint.path, post_script(tmp, endpoint), connections=CONNECTIONS,
            duration_s=DURATION_S, warmup_s=WARMUP_S, max_non_2xx_share=MAX_NON_2XX_SHARE)
    return loads


def run() -> list[Figure]:
    """Measure; see the module docstring for exactly what."""
    _require_fastapi()
    with load_test() as (tmp, servers):
        servers.append(lukhas := start_lukhas(tmp, SETTINGS, migrated=True))
        endpoints = prepare(lukhas)
        servers += _start_peers(tmp, lukhas)
        ref, fastapi, _bare = servers[1:]
        check_answers(lukhas, [ref, fastapi], endpoints)
        loads = _measure(tmp, endpoints, servers)
        progress(lukhas_cli(lukhas.workdir / "data", "glyphs", "audit-verify").strip().splitlines()[-1])
    return [figure for endpoint in endpoints for figure in _figures(endpoint.name, loads[endpoint.name])]


def _figures(name: str, runs: list[list[Load]]) -> list[Figure]:
    lukhas, ref, fastapi, bare = ([load.rps for load in runs_of] for runs_of in runs)
    rps = [median(values) for values in (lukhas, ref, fastapi, bare)]
    cpu = [median([load.cpu_us_per_request for load in runs_of]) for runs_of in runs]
    p99 = [median([load.p99_ms for load in runs_of]) for runs_of in runs]
    to_ref, to_fastapi = TARGET_RATIOS[name]
    label = f"{name}, {CONNECTIONS} conn."
    progress(f"{name}: Lukhas {rps[0]:.0f}, ref {rps[1]:.0f}, FastAPI {rps[2]:.0f}, bare {rps[3]:.0f} req/s; "
             f"CPU/request Lukhas {cpu[0]:.0f} µs, ref {cpu[1]:.0f} µs")
    return [
        Figure(f"{label}, requests/s", rps[0], "req/s", reference=rps[3], higher_is_better=True,
               target=TARGET_BINDS_PER_S if name == BIND else None),
        Figure(f"{label}, hand-written ref, requests/s", rps[1], "req/s", reference=rps[3],
               higher_is_better=True),
        Figure(f"{label}, FastAPI + uvicorn, requests/s", rps[2], "req/s", reference=rps[3],
               higher_is_better=True),
        Figure(f"{label}, Lukhas / hand-written ref", rps[0] / rps[1], "×", target=to_ref,
               higher_is_better=True),
        Figure(f"{label}, Lukhas / FastAPI", rps[0] / rps[2], "×", target=to_fastapi, higher_is_better=True),
        Figure(f"{label}, server CPU per request (reference: hand-written ref)", cpu[0], "µs",
               reference=cpu[1]),
        Figure(f"{label}, p99 latency (reference: hand-written ref)", p99[0], "ms", reference=p99[1]),
    ]
