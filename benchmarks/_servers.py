"""The processes a load test measures: `lukhas serve` hosts and the peer apps.

Every server listens on 127.0.0.1 on a port that was free a moment before,
in a directory of its own (its stdout and stderr go to files there), and is
ready once its `/readyz` answers 200. With two or more CPUs a server runs
pinned to SERVER_CPUS, with every thread and process it starts, unless the
caller asks otherwise (several worker processes need every core).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ._common import (
    BENCH_DIR,
    REPO,
    SERVER_CPUS,
    BenchError,
    ExitedEarly,
    cpu_s_of,
    descendants_of,
    free_port,
    pinned_to,
    progress,
    stop,
    wait_for_status,
)

__all__ = ["Server", "add_user", "lukhas_cli", "server_dir", "spawn", "start_bare", "start_lukhas",
           "start_peer"]

START_LIMIT_S = 30.0
_TOKEN_LINE = re.compile(r"^\s*(lk_[A-Za-z0-9_-]+)\s*$", re.MULTILINE)


@dataclass
class Server:
    """A server process we started, listening on 127.0.0.1:`port`."""

    label: str
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    headers: dict[str, str]
    #: The CPUs it (and all it starts) runs on; None: unpinned. Load against a
    #: pinned server comes from the other CPU (`_wrk.wrk`).
    cpus: frozenset[int] | None = None

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


def spawn(label: str, argv: list[str], env: dict[str, str], workdir: Path, port: int,
          pinned: bool = True) -> Server:
    """Start `argv` in `workdir` (stdout and stderr to files there), on
    SERVER_CPUS when `pinned` (and there are CPUs to pin to); wait for
    `/readyz` 200 within START_LIMIT_S, else stop it and raise."""
    workdir.mkdir(parents=True, exist_ok=True)
    cpus = SERVER_CPUS if pinned else None
    with open(workdir / "stdout.log", "wb") as stdout, open(workdir / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(argv, env=env, cwd=workdir, stdin=subprocess.DEVNULL,
                                   stdout=stdout, stderr=stderr, preexec_fn=pinned_to(cpus))
    server = Server(label, process, port, workdir, {}, cpus)
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


def _retried_once(start: Callable[[int], Server]) -> Server:
    """`start(1)`, then `start(2)` if that server exited before it listened
    (its port was taken meanwhile, between choosing it and binding it)."""
    try:
        return start(1)
    except ExitedEarly as exc:
        progress(f"{exc}; retrying once")
    return start(2)


def start_lukhas(tmp: Path, settings: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None, migrated: bool = False,
                 pinned: bool = True) -> Server:
    """`lukhas serve` on a fresh data directory; reads the first admin's token.

    `settings` are added to its environment (e.g. a plugin's settings). With
    `headers` (a database that has its admin: `LUKHAS_DATA_DIR` in
    `settings`), no token is read and those headers are sent instead. With
    `migrated`, `lukhas db upgrade` brings the fresh database to head first,
    so the host starts as on every start after the first (without Alembic).
    `pinned`: on SERVER_CPUS (`spawn`).

    A start whose port was taken meanwhile is retried once, in a new directory
    (so that it again creates the first admin).
    """
    def start(attempt: int) -> Server:
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
        return spawn("lukhas", [sys.executable, "-m", "lukhas_kernel", "serve"], env, workdir, port, pinned)

    server = _retried_once(start)
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
        raise BenchError(f"lukhas {' '.join(args)}: {(done.stderr or done.stdout).strip()[-300:]}")
    return done.stdout


def add_user(data_dir: Path, name: str) -> str:
    """`lukhas users add NAME`; the new user's id."""
    return lukhas_cli(data_dir, "users", "add", name).split()[1]  # "user_id: usr_…"


def start_peer(tmp: Path, label: str, argv: list[str], headers: dict[str, str],
               pinned: bool = True) -> Server:
    """A peer app (bare aiohttp, a reference), `argv` with "{port}" standing for
    its port, run from the repository (so `-m benchmarks.…` imports), sent the
    same `headers` as Lukhas. A start whose port was taken meanwhile is retried once."""
    workdir = tmp / re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    env = {**_environment(), "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])}
    def start(attempt: int) -> Server:
        port = free_port()
        return spawn(label, [arg.replace("{port}", str(port)) for arg in argv], env, workdir, port, pinned)

    server = _retried_once(start)
    server.headers = dict(headers)
    return server


def start_bare(tmp: Path, headers: dict[str, str], pinned: bool = True) -> Server:
    """`bare_app.py`, sent the same `headers` as Lukhas (it ignores them)."""
    return start_peer(tmp, "bare aiohttp", [sys.executable, str(BENCH_DIR / "bare_app.py"), "{port}"],
                      headers, pinned)


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
