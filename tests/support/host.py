"""`serving`: the suite's one way to start a real `lukhas serve` and wait for it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lukhas_kernel._cli.hostfile import running_host

from support.cli import clean_env, data_dir
from support.net import free_port
from support.polling import eventually
from support.urls import get

#: How long a host may take to answer `ready` with 200.
START_S = 30


@dataclass
class Host:
    process: subprocess.Popen[str]
    url: str
    stdout: str = ""  # what is left on stdout after the test read from it
    stderr: str = ""

    def events(self, name: str) -> list[dict[str, Any]]:
        """The host's JSON log events called `name` (read once it has stopped)."""
        lines = (json.loads(line) for line in self.stderr.splitlines() if line.startswith("{"))
        return [line for line in lines if line.get("event") == name]


def parent_of(pid: int) -> int:
    """The parent process id of `pid` (Linux `/proc`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def workers_of(pid: int) -> list[int]:
    """The live child processes of `pid`: a host's workers."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if parent_of(int(entry.name)) == pid:
                    children.append(int(entry.name))
            except (OSError, AssertionError):  # exited meanwhile
                continue
    return sorted(children)


def kill_9(process: subprocess.Popen[str]) -> None:
    """SIGKILL a host this test started and its workers, by their pids: no
    shutdown, no teardown anywhere (a worker left alone would notice its
    supervisor is gone and stop gracefully)."""
    workers = workers_of(process.pid)
    process.kill()
    process.wait(timeout=15)
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _data_of(tmp_path: Path) -> dict[str, str]:
    """The data dir `tmp_path/data`, or, while a host holds it (a test with
    several hosts on one database, as on several machines), one of its own
    that shares the database and the plugins' files: a data dir has one host."""
    first = data_dir(tmp_path)
    if running_host(first) is None:  # a stale pid file is no host
        return {"LUKHAS_DATA_DIR": str(first)}
    n = 2
    while running_host(tmp_path / f"data-{n}") is not None:
        n += 1
    own = tmp_path / f"data-{n}"
    own.mkdir(mode=0o700, exist_ok=True)
    (first / "plugins").mkdir(mode=0o700, exist_ok=True)
    if not (own / "plugins").exists():
        (own / "plugins").symlink_to(first / "plugins")
    return {"LUKHAS_DATA_DIR": str(own), "LUKHAS_DATABASE_URL": f"sqlite+aiosqlite:///{first / 'lukhas.db'}"}


def _status(url: str) -> int | None:
    try:
        return get(url)[0]
    except (urllib.error.URLError, ConnectionError):
        return None


@contextmanager
def serving(tmp_path: Path, env: dict[str, str] | None = None,
            expect_exit: int | None = 0, ready: str = "/healthz",
            python: str | Path = sys.executable) -> Iterator[Host]:
    """A real `lukhas serve` on a free port, answering 200 on `ready`; stopped
    with SIGINT afterwards. Its data dir is `tmp_path/data`, its log JSON;
    `python` is the interpreter it runs on (another venv's).

    It must exit with `expect_exit` (None: any code, e.g. when the test killed it).
    """
    port = free_port()
    full = clean_env({"LUKHAS_PORT": str(port), "LUKHAS_LOG_FORMAT": "json",
                      **_data_of(tmp_path), **(env or {})})
    # The log goes to a file, not a pipe: a pipe read only at the end fills
    # up under traffic (64 KiB), and the host then blocks writing its log.
    log = tempfile.TemporaryFile("w+", encoding="utf-8")
    process = subprocess.Popen([str(python), "-m", "lukhas_kernel", "serve"], cwd=tmp_path,
                               env=full, stdout=subprocess.PIPE, stderr=log, text=True)
    host = Host(process, f"http://127.0.0.1:{port}")
    status = None

    def up() -> bool:
        nonlocal status
        status = _status(host.url + ready)
        return status == 200 or process.poll() is not None

    try:
        try:
            eventually(up, START_S, what=f"{host.url}{ready} answering 200")
        except AssertionError:
            pass  # reported below, with the host's log
        if status == 200:
            yield host
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            host.stdout = process.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            host.stdout = process.communicate(timeout=15)[0]
        log.seek(0)
        host.stderr = log.read()
        log.close()
    assert status == 200, (f"host not serving within {START_S} s (exit code {process.returncode}):"
                           f"\n{host.stderr}")
    assert expect_exit is None or process.returncode == expect_exit, host.stderr
