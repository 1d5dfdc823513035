"""What every benchmark module shares: figures, statistics, local HTTP and processes.

Everything here talks to 127.0.0.1 only and ends only processes it is handed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "REPO",
    "BenchError",
    "ExitedEarly",
    "Figure",
    "LOAD_CPUS",
    "SERVER_CPUS",
    "cpu_s_of",
    "descendants_of",
    "free_port",
    "host_rss_mb",
    "http_get",
    "http_status",
    "machine",
    "median",
    "percentile",
    "pinned_to",
    "pinning",
    "progress",
    "rss_mb_of",
    "stop",
    "wait_for_status",
    "within_target",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def _cpu_split() -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """The CPU for servers under load and the one for the load generator: the
    first two this process may run on; (None, None) with fewer than two.

    Apart, the load generator never takes CPU time from the server it
    measures, and a server's requests/s is what one core serves.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return frozenset(allowed[:1]), frozenset(allowed[1:2])


SERVER_CPUS, LOAD_CPUS = _cpu_split()


def pinning() -> str | None:
    """How a module that pins its processes (`PINNED = True`) placed them; None
    when there are too few CPUs to pin."""
    if SERVER_CPUS is None or LOAD_CPUS is None:
        return None
    return f"servers on CPU {min(SERVER_CPUS)}, wrk -t1 on CPU {min(LOAD_CPUS)}"


def pinned_to(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen` that runs the child, and every
    thread and process it starts, on `cpus`; None (no pinning) for None.

    Set before the child runs, so threads and process pools it starts while
    starting up are pinned too (`os.sched_setaffinity` on a running process
    moves only its main thread).
    """
    if cpus is None:
        return None
    return functools.partial(os.sched_setaffinity, 0, cpus)


class BenchError(RuntimeError):
    """A benchmark could not produce its figure; the message says why."""


class ExitedEarly(BenchError):
    """A server process exited before it was ready."""


@dataclass(frozen=True)
class Figure:
    """One measured number, with what it is compared against.

    `target` is an upper bound (the figure is within target when
    `value <= target`), or a lower bound when `higher_is_better` (within
    target when `value >= target`, e.g. requests/s); `reference` is the same
    quantity for a baseline (e.g. a bare aiohttp app) and `ratio` is
    `value / reference`.
    """

    name: str
    value: float
    unit: str
    target: float | None = None
    reference: float | None = None
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        if self.reference is None or self.reference == 0:
            return None
        return self.value / self.reference

    @property
    def within_target(self) -> bool | None:
        return within_target(self.value, self.target, self.higher_is_better)

    def as_json(self) -> dict[str, Any]:
        """The figure as stored in `results/<module>.json`."""
        ratio = self.ratio
        return {
            "name": self.name,
            "value": round(self.value, 3),
            "unit": self.unit,
            "target": self.target,
            "reference": None if self.reference is None else round(self.reference, 3),
            "ratio": None if ratio is None else round(ratio, 3),
            "higher_is_better": self.higher_is_better,
        }


def within_target(value: float, target: float | None, higher_is_better: bool = False) -> bool | None:
    """Whether `value` meets `target` (None without one): an upper bound, or a
    lower bound when `higher_is_better`."""
    if target is None:
        return None
    return value >= target if higher_is_better else value <= target


def percentile(values: list[float], q: float) -> float:
    """The `q`-th percentile (0..100), interpolating linearly between ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    """The 50th percentile."""
    return percentile(values, 50)


def machine() -> dict[str, Any]:
    """What the numbers depend on besides the code: CPUs, Python, OS."""
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
    }


def progress(message: str) -> None:
    """One line of progress on stderr (stdout carries the table)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(port: int, path: str, timeout_s: float) -> int | None:
    """GET http://127.0.0.1:`port``path`; the status code, None if no answer."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(request.encode("ascii"))
            head = b""
            while b"\r\n" not in head and len(head) < 1024:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                head += chunk
    except OSError:  # refused, reset or timed out: not answering yet
        return None
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None, timeout_s: float = 5.0
) -> tuple[int, bytes]:
    """GET http://127.0.0.1:`port``path` with `headers`; the status code and body.

    Only for small answers with a Content-Length (it reads until the server
    closes). Raises BenchError when there is no well-formed answer.
    """
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    request = "\r\n".join(lines) + "\r\n\r\n"
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(request.encode("ascii"))
            while chunk := sock.recv(65536):
                answer += chunk
    except OSError as exc:
        raise BenchError(f"GET {path} on port {port}: {exc}") from None
    head, _, body = answer.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise BenchError(f"GET {path} on port {port}: no HTTP answer ({answer[:80]!r})")
    return int(parts[1]), body


def http_json(port: int, method: str, path: str, headers: dict[str, str],
              body: dict[str, Any] | None = None, timeout_s: float = 30.0) -> tuple[int, bytes]:
    """`method` http://127.0.0.1:`port``path` with `headers`, and `body` as JSON if
    given; the status and the whole body, error answers included. BenchError
    when there is no answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:  # a 4xx or 5xx still has a status and a body
        return exc.code, exc.read()
    except OSError as exc:
        raise BenchError(f"{method} {path} on port {port}: {exc}") from None


def rss_mb_of(pid: int) -> float:
    """Resident set size of process `pid` in MB (10**6 bytes), from /proc (Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise BenchError(f"cannot read RSS of pid {pid}: {exc.strerror}") from None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6  # "VmRSS:  12345 kB", kB meaning KiB
    raise BenchError(f"no VmRSS in /proc/{pid}/status")


def cpu_s_of(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far, from /proc (Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        raise BenchError(f"cannot read CPU time of pid {pid}: {exc.strerror}") from None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"; utime, stime are 14, 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    """Every live process's children, by parent pid, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def descendants_of(pid: int) -> list[int]:
    """Every live process below `pid` (children, their children, …), from /proc (Linux)."""
    children = _children()
    found, pending = [], [pid]
    while pending:
        below = children.get(pending.pop(), [])
        found += below
        pending += below
    return found


def host_rss_mb(pid: int) -> tuple[float, float]:
    """RSS in MB of the process serving for `pid`, and of `pid` with every
    process below it.

    `lukhas serve` is a supervisor that runs its workers as child processes:
    the serving process is its child with the largest RSS (with one worker,
    the worker); a process without children (a peer app) serves itself.
    """
    serving = [rss_mb_of(pid)]
    for child in _children().get(pid, []):
        with contextlib.suppress(BenchError):  # ended meanwhile
            serving.append(rss_mb_of(child))
    total = serving[0]
    for below in descendants_of(pid):
        with contextlib.suppress(BenchError):
            total += rss_mb_of(below)
    return (max(serving[1:]) if len(serving) > 1 else serving[0]), total


def stop(process: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """End a process we started: SIGTERM, wait, then SIGKILL that pid only."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        progress(f"pid {process.pid} ignored SIGTERM for {timeout_s:g}s; killing it")
        process.kill()
        process.wait(timeout_s)


def wait_for_status(
    process: subprocess.Popen[Any], port: int, path: str, deadline: float, poll_s: float = 0.005
) -> None:
    """Poll `path` every `poll_s` until it answers 200.

    Raises ExitedEarly if the process exits first, BenchError once `deadline`
    (a `time.monotonic()` value) passes.
    """
    last: int | None = None
    while True:
        if process.poll() is not None:
            raise ExitedEarly(f"pid {process.pid} exited with {process.returncode} before {path} was 200")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            answer = f"last answer {last}" if last is not None else "no answer"
            raise BenchError(f"{path} not 200 within the time limit ({answer})")
        last = http_status(port, path, timeout_s=min(remaining, 1.0)) or last
        if last == 200:
            return
        time.sleep(poll_s)
