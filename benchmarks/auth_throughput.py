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
- Load: `wrk -t2 -c64 -d10s --latency` from a separate process, 127.0.0.1 only,
  after a 2 s warm-up run against each server. Runs alternate (bare, lukhas,
  bare, lukhas, ...) so that noise on a shared machine falls on both alike; each
  figure is the median over the runs. Before measuring, the authenticated
  request must answer 200 and the same request without a token 401 (so the
  real auth path is measured). A run with more than 0.1 % non-2xx answers
  fails; fewer are reported (a figure with target 0) but do not stop the run.
- The machine's cores are shared by wrk (2 threads) and the server under test
  (one Python process, one event loop): on 2 cores the load generator takes a
  good part of the CPU, so absolute requests/s are lower than on a dedicated
  load machine. This is expected; the ratio to bare aiohttp, measured under the
  same conditions in the same run, is the figure that matters. *Server CPU per
  request* (the server process's user + system CPU time over the run divided
  by its requests) is less sensitive to that sharing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._common import (
    BENCH_DIR,
    BenchError,
    ExitedEarly,
    Figure,
    cpu_s_of,
    descendants_of,
    free_port,
    http_get,
    median,
    progress,
    stop,
    wait_for_status,
)

__all__ = ["run"]

PATH = "/api/v1/plugins"
THREADS = 2
CONNECTIONS = 64
DURATION_S = 10
WARMUP_S = 2
RUNS = 3
START_LIMIT_S = 30.0
# wrk ends on its own after its duration; this bounds a wrk that hangs.
WRK_GRACE_S = 30.0
TARGET_RPS_RATIO = 0.6
# At most this share of non-2xx answers is tolerated (and reported); more fails the run.
MAX_NON_2XX_SHARE = 0.001

_TOKEN_LINE = re.compile(r"^\s*(lk_[A-Za-z0-9_-]+)\s*$", re.MULTILINE)
_DURATION = re.compile(r"^([0-9.]+)(us|ms|s|m|h)$")
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


# -- the servers -----------------------------------------------------------------


@dataclass
class Server:
    """A server process we started, listening on 127.0.0.1:`port`."""

    label: str
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    headers: dict[str, str]

    def cpu_s(self) -> float:
        """User + system CPU seconds the process and the live processes below it
        (worker processes, the dreams pool) have used so far (Linux /proc)."""
        total = 0.0
        for pid in [self.process.pid, *descendants_of(self.process.pid)]:
            with contextlib.suppress(BenchError):  # a child that ended meanwhile
                total += cpu_s_of(pid)
        return total

    def stderr_tail(self, lines: int = 5) -> str:
        tail = (self.workdir / "stderr.log").read_text(errors="replace").strip().splitlines()[-lines:]
        return "".join(f"\n  {line}" for line in tail)


def spawn(label: str, argv: list[str], env: dict[str, str], workdir: Path, port: int) -> Server:
    """Start `argv` in `workdir` (stdout and stderr to files there); wait for
    `/readyz` 200 within START_LIMIT_S, else stop it and raise."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "stdout.log", "wb") as stdout, open(workdir / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(argv, env=env, cwd=workdir, stdin=subprocess.DEVNULL,
                                   stdout=stdout, stderr=stderr)
    server = Server(label, process, port, workdir, {})
    try:
        wait_for_status(process, port, "/readyz", time.monotonic() + START_LIMIT_S)
    except BenchError as exc:
        stop(process)
        raise type(exc)(f"{label}: {' '.join(argv)}: {exc}{server.stderr_tail()}") from None
    return server


def _environment() -> dict[str, str]:
    """The inherited environment without any LUKHAS_ setting, unbuffered."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LUKHAS_")}
    return {**inherited, "PYTHONUNBUFFERED": "1"}


def start_lukhas(tmp: Path, settings: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None, migrated: bool = False) -> Server:
    """`lukhas serve` on a fresh data directory; reads the first admin's token.

    `settings` are added to its environment (e.g. a plugin's settings). With
    `headers` (a database that has its admin: `LUKHAS_DATA_DIR` in
    `settings`), no token is read and those headers are sent instead. With
    `migrated`, `lukhas db upgrade` brings the fresh database to head first,
    so the host starts as on every start after the first (without Alembic).

    A start whose port was taken meanwhile is retried once, in a new directory
    (so that it again creates the first admin).
    """
    for attempt in (1, 2):
        port = free_port()
        workdir = tmp / f"lukhas-{attempt}"
        env = {
            **_environment(),
            "LUKHAS_HOST": "127.0.0.1",
            "LUKHAS_PORT": str(port),
            "LUKHAS_DATA_DIR": str(workdir / "data"),
            "LUKHAS_LOG_FORMAT": "json",
            "LUKHAS_LOG_LEVEL": "warning",
            **(settings or {}),
        }
        if migrated:
            lukhas_cli(workdir / "data", "db", "upgrade")
        try:
            server = spawn("lukhas", [sys.executable, "-m", "lukhas_kernel", "serve"], env, workdir, port)
            break
        except ExitedEarly as exc:
            if attempt == 2:
                raise
            progress(f"{exc}; retrying once")
    if headers is not None:
        server.headers = dict(headers)
        return server
    # The token is printed before the app starts listening, so it is there by now.
    stdout = (server.workdir / "stdout.log").read_text(errors="replace")
    after = stdout.partition("Created the first admin user")[2]
    match = _TOKEN_LINE.search(after)
    if match is None:
        stop(server.process)
        raise BenchError(f"lukhas serve printed no first admin token on stdout: {stdout[:300]!r}")
    server.headers = {"Authorization": f"Bearer {match.group(1)}"}
    return server


def lukhas_cli(data_dir: Path, *args: str) -> str:
    """`lukhas ARGS` on the database in `data_dir` (a host may be serving it:
    SQLite in WAL mode); its stdout. BenchError unless it exits 0."""
    done = subprocess.run([sys.executable, "-m", "lukhas_kernel", *args],
                          env={**_environment(), "LUKHAS_DATA_DIR": str(data_dir)},
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise BenchError(f"lukhas {' '.join(args)}: {done.stderr.strip()[-300:]}")
    return done.stdout


def add_user(data_dir: Path, name: str) -> str:
    """`lukhas users add NAME`; the new user's id."""
    return lukhas_cli(data_dir, "users", "add", name).split()[1]  # "user_id: usr_…"


def start_bare(tmp: Path, headers: dict[str, str]) -> Server:
    """`bare_app.py`, sent the same `headers` as Lukhas (it ignores them)."""
    for attempt in (1, 2):
        port = free_port()
        try:
            server = spawn("bare aiohttp", [sys.executable, str(BENCH_DIR / "bare_app.py"), str(port)],
                           _environment(), tmp / "bare", port)
            break
        except ExitedEarly as exc:
            if attempt == 2:
                raise
            progress(f"{exc}; retrying once")
    server.headers = dict(headers)
    return server


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


# -- wrk ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One wrk run: requests/s, p50 and p99 latency (ms), the server's CPU
    seconds per request, how many answers were not 2xx, and wrk's socket
    errors (connect, read, write and timeout errors added up)."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    cpu_us_per_request: float
    socket_errors: int = 0

    @property
    def success_percent(self) -> float:
        """2xx answers out of the requests wrk counted, in %, each socket error
        counted as one more failed request. Conservative: wrk counts a request
        that outlives its timeout as an error and may still count its answer."""
        attempted = self.requests + self.socket_errors
        return 100.0 * (self.requests - self.non_2xx) / attempted


def _ms(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, total requests, p50/p99 latency (ms), non-2xx count and
    socket errors from wrk's `--latency` output."""
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    p50 = re.search(r"^\s*50(?:\.0+)?%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s*99(?:\.0+)?%\s+(\S+)", output, re.MULTILINE)
    if not (rps and total and p50 and p99):
        raise BenchError(f"cannot parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def wrk(server: Server, duration_s: int, path: str = PATH, script: Path | None = None,
        connections: int = CONNECTIONS, max_non_2xx_share: float = MAX_NON_2XX_SHARE) -> Load:
    """One wrk run against `server` with `connections` open connections on
    min(connections, THREADS) threads (wrk needs a connection per thread);
    raises BenchError if it fails or more than `max_non_2xx_share` of the
    answers are not 2xx."""
    executable = require_wrk()
    threads = min(connections, THREADS)
    argv = [executable, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency"]
    for name, value in server.headers.items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:  # e.g. a POST with a body
        argv += ["-s", str(script)]
    argv.append(f"http://127.0.0.1:{server.port}{path}")
    if server.process.poll() is not None:
        raise BenchError(f"{server.label} exited with {server.process.returncode}{server.stderr_tail()}")
    cpu_before = server.cpu_s()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + WRK_GRACE_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:  # subprocess.run has killed wrk (its pid only)
        limit = duration_s + WRK_GRACE_S
        raise BenchError(f"wrk against {server.label} did not end within {limit:g}s") from None
    cpu_s = server.cpu_s() - cpu_before
    if done.returncode != 0:
        raise BenchError(f"wrk against {server.label} exited with {done.returncode}: {done.stderr.strip()}")
    figures = parse_wrk(done.stdout)
    requests, non_2xx = figures["requests"], figures["non_2xx"]
    if requests == 0:
        raise BenchError(f"wrk against {server.label} completed no request:\n{done.stdout}")
    if non_2xx > max_non_2xx_share * requests:
        raise BenchError(f"{server.label}: {non_2xx} of {requests} answers were not 2xx"
                         f"{server.stderr_tail()}")
    if non_2xx or figures["socket_errors"]:
        progress(f"warning: {server.label}: {non_2xx} non-2xx answers, "
                 f"{figures['socket_errors']} socket errors in {requests} requests")
    return Load(figures["rps"], figures["p50_ms"], figures["p99_ms"], requests, non_2xx,
                cpu_s / requests * 1e6, figures["socket_errors"])


def require_wrk() -> str:
    """wrk's path; BenchError when it is not installed."""
    executable = shutil.which("wrk")
    if executable is None:
        raise BenchError("wrk is not installed (`make bench` installs it: apt-get install wrk)")
    return executable


def median_of(loads: list[Load], attribute: str) -> float:
    """The median of one of the runs' figures, e.g. `median_of(runs, "rps")`."""
    return median([getattr(load, attribute) for load in loads])


@contextlib.contextmanager
def server_dir() -> Iterator[tuple[Path, list[Server]]]:
    """A temporary directory and a list to put the servers started in it on;
    stops every listed server on the way out."""
    with tempfile.TemporaryDirectory(prefix="lukhas-bench-") as name:
        servers: list[Server] = []
        try:
            yield Path(name), servers
        finally:
            for server in servers:
                stop(server.process)


@contextlib.contextmanager
def load_test() -> Iterator[tuple[Path, list[Server]]]:
    """`server_dir()` for a load test: fails at once without wrk, before any
    server is started."""
    require_wrk()
    with server_dir() as (tmp, servers):
        yield tmp, servers


def measure(lukhas: Server, bare: Server, runs: int = RUNS, path: str = PATH,
            script: Path | None = None) -> tuple[list[Load], list[Load]]:
    """A warm-up run against each, then `runs` alternating measured runs each."""
    bare_runs, lukhas_runs = measure_all([bare, lukhas], runs, path, script)
    return lukhas_runs, bare_runs


def measure_all(servers: list[Server], runs: int = RUNS, path: str = PATH,
                script: Path | None = None, *, connections: int = CONNECTIONS,
                duration_s: int = DURATION_S, warmup_s: int = WARMUP_S,
                max_non_2xx_share: float = MAX_NON_2XX_SHARE) -> list[list[Load]]:
    """A warm-up run against each server, then `runs` rounds of one measured
    run against each in turn, so that noise falls on all alike; runs by server."""
    progress(f"warm-up: wrk -c{connections} {warmup_s}s against each server")
    for server in servers:
        wrk(server, warmup_s, path, script, connections, max_non_2xx_share)
    loads: list[list[Load]] = [[] for _ in servers]
    for i in range(runs):
        for server, runs_of_server in zip(servers, loads, strict=True):
            load = wrk(server, duration_s, path, script, connections, max_non_2xx_share)
            runs_of_server.append(load)
            progress(f"run {i + 1}/{runs} {server.label}, {connections} connections: {load.rps:.0f} req/s, "
                     f"p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms, "
                     f"{load.cpu_us_per_request:.0f} µs CPU/request")
    return loads


# -- the module's figures --------------------------------------------------------


def run() -> list[Figure]:
    """Measure throughput; see the module docstring for what exactly."""
    with load_test() as (tmp, servers):
        servers.append(lukhas := start_lukhas(tmp))
        servers.append(bare := start_bare(tmp, lukhas.headers))
        verify(lukhas, bare)
        progress(f"wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION_S}s --latency, "
                 f"{RUNS} runs each, alternating bare and lukhas")
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
