"""wrk, the load generator of every throughput figure: one run, and interleaved rounds.

Against a pinned server (`Server.cpus`), wrk runs one thread on LOAD_CPUS,
the other core, so it never takes CPU time from the server it measures;
against an unpinned one, THREADS threads wherever the OS puts them. A
server's CPU time over a run is read from /proc, so each run also gives the
server's CPU time per request.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._common import LOAD_CPUS, BenchError, median, pinned_to, progress
from ._servers import Server, server_dir

__all__ = ["Load", "load_test", "measure_all", "median_of", "parse_wrk", "require_wrk", "wrk"]

THREADS = 2
CONNECTIONS = 64
DURATION_S = 10
WARMUP_S = 2
# wrk ends on its own after its duration; this bounds a wrk that hangs.
WRK_GRACE_S = 30.0
# At most this share of non-2xx answers is tolerated (and reported); more fails the run.
MAX_NON_2XX_SHARE = 0.001

_DURATION = re.compile(r"^([0-9.]+)(us|ms|s|m|h)$")
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


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


def wrk(server: Server, duration_s: int, path: str, script: Path | None = None,
        connections: int = CONNECTIONS, max_non_2xx_share: float = MAX_NON_2XX_SHARE) -> Load:
    """One wrk run against `server` with `connections` open connections (see
    the module docstring for its threads and CPU); raises BenchError if it
    fails or more than `max_non_2xx_share` of the answers are not 2xx."""
    executable = require_wrk()
    load_cpus = LOAD_CPUS if server.cpus is not None else None
    # wrk needs a connection per thread.
    threads = 1 if load_cpus is not None else min(connections, THREADS)
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
                              stdin=subprocess.DEVNULL, preexec_fn=pinned_to(load_cpus))
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
def load_test() -> Iterator[tuple[Path, list[Server]]]:
    """`server_dir()` for a load test: fails at once without wrk, before any
    server is started."""
    require_wrk()
    with server_dir() as (tmp, servers):
        yield tmp, servers


def measure_all(servers: list[Server], runs: int, path: str, script: Path | None = None, *,
                connections: int = CONNECTIONS, duration_s: int = DURATION_S, warmup_s: int = WARMUP_S,
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
