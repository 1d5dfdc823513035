"""Routes: four plugin routes at 1 and 100 connections against bare aiohttp; RSS after the load.

- One real `lukhas serve` on 127.0.0.1 with a fresh data dir (the SQLite
  default) and every installed plugin on (dreams, vivox, glyphs,
  observability: each must be active or degraded, else the run fails). The
  per-caller rate limits are lifted by settings, since one load generator is
  one caller and the contract's limits would answer it 429:
  `GLYPHS_BIND_RATE_LIMIT=`, `GLYPHS_VALIDATE_RATE_LIMIT=` and
  `VIVOX_READ_RATE_LIMIT=` (empty: no limit),
  and `DREAMS_MAX_PENDING_PER_USER` raised to the dreams seeded. Every
  request carries the first admin's token.
- Data prepared beforehand: 25 completed tiny dreams of the admin, so that
  `GET /api/v1/dreams/list` answers a full page (20 items and a next
  cursor, read from SQLite); a user added with `lukhas users add` with 1,000
  interactions, whose metrics `GET /api/v1/drift/{user_id}` answers (cached
  after the first read, as in production); `POST /api/v1/glyphs/bind` with
  the same small body each time (a binding and its audit entry written per
  request); `POST /api/v1/glyphs/validate` with the token of a binding made
  beforehand (signature checked, binding read).
- Reference: `bare_app.py`, bare aiohttp handlers answering the same paths
  with constant bodies of the same shape (after reading a POST's body), in
  their own process, sent the same requests. Before measuring, each route
  must answer both with its 2xx status and JSON.
- Load: for each route and each of 1 and 100 connections, a 1 s warm-up
  run against each server, then one `wrk -cC -d5s --latency` run against
  each, bare first, from a separate process, 127.0.0.1 only; servers and
  wrk pinned to separate cores as in auth_throughput. The routes at 64
  connections, with their targets, are in db_routes, beside the
  hand-written reference and FastAPI.
- Success rate at 100 connections, per route: 2xx answers out of the
  requests wrk attempted (a socket error counts as a failed request);
  target 100 %. A run where more than half the requests fail stops the
  module: its figures would describe error answers, not the route.
- RSS: after the load (topped up to at least 10,000 requests on the four
  routes if the runs sent fewer), the resident set size of the Lukhas
  process that served them (the worker of `lukhas serve`'s supervisor; the
  whole host's, supervisor included, is reported beside it),
  against the bare process's after the same load. The request count is the
  host's own (its `lukhas_http_requests_total` on the four routes, every
  status), so it is exact, warm-ups included. Target ≤ 75 MB (the
  performance issue's). The measured host's database was brought to head beforehand by
  `lukhas db upgrade`, as for every start after the first, so the host never
  imports Alembic. A second host on a fresh data directory, which runs every
  migration itself at its first start (Alembic and Mako stay loaded, about
  10 MB), is prepared the same way, topped up to 10,000 requests and reported
  too, against the earlier target of ≤ 100 MB.
- Per-run figures on a shared machine: compare a figure with its bare
  reference from the same run rather than across machines.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ._common import BenchError, Figure, host_rss_mb, http_get, http_json, progress, stop
from ._servers import Server, add_user, start_bare, start_lukhas
from ._wrk import Load, load_test, measure_all, wrk
from .vivox import batches

__all__ = ["BIND_BODY", "SETTINGS", "Endpoint", "check_plugins", "expect", "post_script", "prepare",
           "run", "seed_dreams"]

PINNED = True  # servers on one CPU, wrk on another (see _servers.spawn, _wrk.wrk)
CONNECTION_COUNTS = (1, 100)
DURATION_S = 5
WARMUP_S = 1
# The connection count of the top-up runs, and the one of the success rate.
TOP_UP_CONNECTIONS = 64
SUCCESS_CONNECTIONS = 100
TARGET_SUCCESS_PERCENT = 100.0
# More failed requests than this share, and a run measures error answers, not the route.
MAX_FAILED_SHARE = 0.5
SEEDED_DREAMS = 25
SEED_LIMIT_S = 60.0
RSS_AFTER_REQUESTS = 10_000
TARGET_RSS_MB = 75.0
# A host that ran its first-start migrations keeps Alembic and Mako loaded.
FIRST_START_RSS_MB = 100.0
PLUGINS = ("dreams", "vivox", "glyphs", "observability")
SETTINGS = {
    "GLYPHS_BIND_RATE_LIMIT": "",
    "GLYPHS_VALIDATE_RATE_LIMIT": "",
    "VIVOX_READ_RATE_LIMIT": "",
    "DREAMS_MAX_PENDING_PER_USER": str(SEEDED_DREAMS),
}
BIND_BODY = {"source": "user:bench", "target": "doc:q3-report", "symbol": "LINK"}


@dataclass(frozen=True)
class Endpoint:
    """One measured route: its name in the table (method and route template), the
    path requested, the JSON body POSTed (None: a GET) and the 2xx status it
    answers."""

    name: str
    path: str
    body: dict[str, Any] | None = None
    status: int = 200

    @property
    def method(self) -> str:
        return "GET" if self.body is None else "POST"

    @property
    def template(self) -> str:
        """The route template, as the host labels its metrics."""
        return self.name.split(" ", 1)[1]


@dataclass(frozen=True)
class Result:
    """One route at one connection count: the Lukhas run and the bare one."""

    endpoint: Endpoint
    connections: int
    lukhas: Load
    bare: Load


# -- preparing the data -------------------------------------------------------------


def _call(server: Server, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One request with `server`'s headers; the status and the parsed JSON answer."""
    try:
        status, raw = http_json(server.port, method, path, server.headers, body)
    except BenchError as exc:
        raise BenchError(f"{server.label}: {exc}") from None
    try:
        return status, json.loads(raw)
    except ValueError:
        shown = raw[:200]
        raise BenchError(f"{server.label}: {method} {path} answered {status}, not JSON: {shown!r}") from None


def expect(server: Server, method: str, path: str, status: int, body: dict[str, Any] | None = None) -> Any:
    """`_call`, raising BenchError unless it answers `status`; the JSON answer."""
    got, answer = _call(server, method, path, body)
    if got != status:
        raise BenchError(f"{server.label}: {method} {path} answered {got}, not {status}: {str(answer)[:300]}")
    return answer


def check_plugins(lukhas: Server) -> None:
    """Every plugin of PLUGINS is installed and serving (active or degraded)."""
    states = {item["name"]: item["state"] for item in expect(lukhas, "GET", "/api/v1/plugins", 200)["items"]}
    off = {name: states.get(name, "not installed") for name in PLUGINS
           if states.get(name) not in ("active", "degraded")}
    if off:
        raise BenchError(f"not every plugin is on: {off}")
    progress("plugins: " + ", ".join(f"{name} {state}" for name, state in sorted(states.items())))


def seed_dreams(lukhas: Server) -> None:
    """POST SEEDED_DREAMS tiny dreams, then wait until all are completed."""
    body = {"fragments": ["a short dream of rivers"], "branches": 1, "depth": 1}
    for _ in range(SEEDED_DREAMS):
        expect(lukhas, "POST", "/api/v1/dreams/parallel", 202, body)
    deadline = time.monotonic() + SEED_LIMIT_S
    while time.monotonic() < deadline:
        page = expect(lukhas, "GET", "/api/v1/dreams/list?limit=100", 200)
        if page["count"] == SEEDED_DREAMS and all(d["status"] == "completed" for d in page["items"]):
            return
        time.sleep(0.1)
    raise BenchError(f"seeded dreams not completed within {SEED_LIMIT_S:g}s")


def prepare(lukhas: Server) -> list[Endpoint]:
    """The data each route needs, checked; the four routes, ready to measure."""
    check_plugins(lukhas)
    seed_dreams(lukhas)
    page = expect(lukhas, "GET", "/api/v1/dreams/list", 200)
    if len(page["items"]) != 20 or page["next_cursor"] is None:
        raise BenchError(f"the dreams page is not full: {len(page['items'])} items")
    user_id = add_user(lukhas.workdir / "data", "subject")
    interactions = batches(user_id, 1)[0]
    expect(lukhas, "POST", "/api/v1/drift/update", 200, interactions)
    token = expect(lukhas, "POST", "/api/v1/glyphs/bind", 201, BIND_BODY)["token"]
    if not expect(lukhas, "POST", "/api/v1/glyphs/validate", 200, {"token": token})["valid"]:
        raise BenchError("the GLYPH token just made does not validate")
    progress(f"prepared: {SEEDED_DREAMS} dreams, user {user_id} with "
             f"{len(interactions['interactions'])} interactions, a GLYPH token")
    return [
        Endpoint("GET /api/v1/dreams/list", "/api/v1/dreams/list"),
        Endpoint("GET /api/v1/drift/{user_id}", f"/api/v1/drift/{user_id}"),
        Endpoint("POST /api/v1/glyphs/bind", "/api/v1/glyphs/bind", BIND_BODY, 201),
        Endpoint("POST /api/v1/glyphs/validate", "/api/v1/glyphs/validate", {"token": token}),
    ]


def _verify(endpoints: list[Endpoint], servers: list[Server]) -> None:
    """Each route answers each server, sent what the load will send, with its
    2xx status and JSON (on Lukhas, bind writes one more binding)."""
    for endpoint in endpoints:
        for server in servers:
            answer = expect(server, endpoint.method, endpoint.path, endpoint.status, endpoint.body)
            progress(f"{server.label}: {endpoint.method} {endpoint.path} → {endpoint.status}, "
                     f"{json.dumps(answer, separators=(',', ':'))[:80]}")


def post_script(tmp: Path, endpoint: Endpoint) -> Path | None:
    """A wrk Lua script that POSTs `endpoint`'s JSON body; None for a GET."""
    if endpoint.body is None:
        return None
    path = tmp / f"{endpoint.path.rsplit('/', 1)[1]}.lua"
    text = json.dumps(json.dumps(endpoint.body))  # a Lua string literal of the JSON body
    path.write_text(f'wrk.method = "POST"\nwrk.body = {text}\n'
                    'wrk.headers["Content-Type"] = "application/json"\n')
    return path


# -- the load and the memory -----------------------------------------------------------


def _answered(lukhas: Server, endpoints: list[Endpoint]) -> int:
    """Requests the host has answered on `endpoints`' routes (any status),
    from its own `lukhas_http_requests_total` (observability)."""
    status, body = http_get(lukhas.port, "/metrics")
    if status != 200:
        raise BenchError(f"GET /metrics answered {status}: {body[:200]!r}")
    templates = {endpoint.template for endpoint in endpoints}
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "lukhas_http_requests":
            total += sum(sample.value for sample in family.samples
                         if sample.name.endswith("_total") and sample.labels["route"] in templates)
    return int(total)


def _load(tmp: Path, endpoints: list[Endpoint], lukhas: Server, bare: Server) -> list[Result]:
    """Every route at every connection count, bare then Lukhas."""
    results = []
    for endpoint in endpoints:
        script = post_script(tmp, endpoint)
        for connections in CONNECTION_COUNTS:
            progress(f"{endpoint.name}, {connections} connections")
            bare_runs, lukhas_runs = measure_all(
                [bare, lukhas], 1, endpoint.path, script, connections=connections,
                duration_s=DURATION_S, warmup_s=WARMUP_S, max_non_2xx_share=MAX_FAILED_SHARE)
            results.append(Result(endpoint, connections, lukhas_runs[0], bare_runs[0]))
    return results


def _top_up(tmp: Path, endpoints: list[Endpoint], lukhas: Server) -> int:
    """Load the four routes in turn until the host has answered at least
    RSS_AFTER_REQUESTS on them; the exact count."""
    before = -1
    while (answered := _answered(lukhas, endpoints)) < RSS_AFTER_REQUESTS:
        # The runs so far were answered, so a count that does not grow is not being kept.
        if answered <= before:
            raise BenchError(f"/metrics counts {answered} requests on the routes and not more")
        progress(f"{answered} requests answered on the routes; topping up to {RSS_AFTER_REQUESTS}")
        for endpoint in endpoints:
            wrk(lukhas, 1, endpoint.path, post_script(tmp, endpoint), TOP_UP_CONNECTIONS, MAX_FAILED_SHARE)
        before = answered
    return answered


# -- the module's figures --------------------------------------------------------


def _figures(results: list[Result]) -> list[Figure]:
    figures = []
    for result in results:
        endpoint, lukhas, bare = result.endpoint, result.lukhas, result.bare
        label = f"{endpoint.name}, {result.connections} conn."
        figures += [
            Figure(f"{label}, requests/s", lukhas.rps, "req/s", reference=bare.rps, higher_is_better=True),
            Figure(f"{label}, p50 latency", lukhas.p50_ms, "ms", reference=bare.p50_ms),
            Figure(f"{label}, p99 latency", lukhas.p99_ms, "ms", reference=bare.p99_ms),
        ]
    for result in results:
        if result.connections == SUCCESS_CONNECTIONS:
            figures.append(Figure(f"{result.endpoint.name}, success rate at {SUCCESS_CONNECTIONS} conn.",
                                  result.lukhas.success_percent, "%", target=TARGET_SUCCESS_PERCENT,
                                  reference=result.bare.success_percent, higher_is_better=True))
    return figures


def _first_start_rss(tmp: Path, servers: list[Server]) -> tuple[int, float]:
    """A host that migrated a fresh database itself, after ≥ RSS_AFTER_REQUESTS
    requests: (requests answered, RSS in MB)."""
    servers.append(first := start_lukhas(tmp / "first-start", SETTINGS))
    endpoints = prepare(first)
    answered = _top_up(tmp, endpoints, first)
    return answered, host_rss_mb(first.process.pid)[0]


def run() -> list[Figure]:
    """Measure; see the module docstring for exactly what."""
    started = time.monotonic()
    with load_test() as (tmp, servers):
        servers.append(lukhas := start_lukhas(tmp, SETTINGS, migrated=True))
        endpoints = prepare(lukhas)
        servers.append(bare := start_bare(tmp, lukhas.headers))
        _verify(endpoints, [lukhas, bare])
        results = _load(tmp, endpoints, lukhas, bare)
        answered = _top_up(tmp, endpoints, lukhas)
        (rss_mb, host_mb), (bare_rss_mb, _) = host_rss_mb(lukhas.process.pid), host_rss_mb(bare.process.pid)
        stop(lukhas.process)
        first_answered, first_rss_mb = _first_start_rss(tmp, servers)
    progress(f"RSS after {answered} requests: lukhas {rss_mb:.1f} MB, bare {bare_rss_mb:.1f} MB; "
             f"first start: {first_rss_mb:.1f} MB after {first_answered}; "
             f"module took {time.monotonic() - started:.0f} s")

    rss = f"RSS after ≥ {RSS_AFTER_REQUESTS:,} requests"
    return [
        *_figures(results),
        Figure("requests answered on the four routes before the RSS reading", answered, "requests",
               target=RSS_AFTER_REQUESTS, higher_is_better=True),
        Figure(f"{rss}, every plugin on", rss_mb, "MB", target=TARGET_RSS_MB, reference=bare_rss_mb),
        Figure(f"{rss}, whole host (supervisor and worker)", host_mb, "MB", reference=bare_rss_mb),
        Figure(f"{rss}, host that ran its first-start migrations", first_rss_mb, "MB",
               target=FIRST_START_RSS_MB, reference=bare_rss_mb),
    ]
