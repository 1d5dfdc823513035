"""Real PostgreSQL and Redis servers on loopback, for tests and benchmarks.

Each server is started from the machine's own binaries (Debian's `postgresql`
and `redis-server` packages) in a temporary directory, on a free port of
127.0.0.1, and stopped, by the PID it was started with, when its context
ends. Nothing else on the machine is touched.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LocalPostgres", "LocalRedis", "local_postgres", "local_redis", "ServerUnavailable"]

START_TIMEOUT_S = 30.0


class ServerUnavailable(RuntimeError):
    """The server's binaries are missing or it did not start; the message says which."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _postgres_bin() -> Path:
    """The directory of `initdb` and `pg_ctl` (Debian keeps them off PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if not candidates:
        raise ServerUnavailable("PostgreSQL is not installed (no pg_ctl): apt-get install postgresql")
    return Path(candidates[0]).parent


@dataclass
class LocalPostgres:
    """A running PostgreSQL cluster; superuser `postgres`, trust auth on loopback."""

    port: int
    data_dir: Path
    bin_dir: Path
    run_as: str | None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; its output."""
        done = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-At", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-c", statement],
            capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"psql: {done.stderr.strip()}")
        return done.stdout

    def create_database(self, prefix: str = "lukhas") -> str:
        """A new empty database; its name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        self.sql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name`, closing whatever connections are still open to it."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def local_postgres(max_connections: int = 300) -> Iterator[LocalPostgres]:
    """Start a throwaway PostgreSQL cluster (initdb + pg_ctl); stop and remove it after.

    PostgreSQL refuses to run as root: as root, the cluster runs as the
    `postgres` user that Debian's package creates. Durability is turned off
    (fsync, synchronous_commit): the cluster lives only as long as a test run.
    """
    bin_dir = _postgres_bin()
    run_as = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="lukhas-pg-"))
    data_dir = root / "data"
    if run_as:
        shutil.chown(root, user=run_as)
    port = free_port()
    log = root / "server.log"

    def run(*args: str) -> None:
        done = subprocess.run(args, user=run_as, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise ServerUnavailable(f"{Path(args[0]).name} failed: {done.stderr.strip()} {tail}".strip())

    try:
        run(str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off -c max_connections={max_connections}")
        run(str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log), "-o", options,
            "-w", "-t", str(int(START_TIMEOUT_S)), "start")
        yield LocalPostgres(port, data_dir, bin_dir, run_as)
    finally:
        if (data_dir / "postmaster.pid").exists():
            subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"],
                           user=run_as, capture_output=True, timeout=START_TIMEOUT_S)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class LocalRedis:
    """A running redis-server."""

    port: int
    process: subprocess.Popen[bytes]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@contextmanager
def local_redis() -> Iterator[LocalRedis]:
    """Start a throwaway redis-server without persistence; stop it (by PID) after."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise ServerUnavailable("redis-server is not installed: apt-get install redis-server")
    root = Path(tempfile.mkdtemp(prefix="lukhas-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(root), "--logfile", str(root / "server.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log = root / "server.log"
                raise ServerUnavailable(
                    f"redis-server did not start: {log.read_text()[-2000:] if log.exists() else ''}")
            time.sleep(0.05)
        yield LocalRedis(port, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)
