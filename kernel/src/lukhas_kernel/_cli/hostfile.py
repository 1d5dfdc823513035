"""The files a running `lukhas serve` keeps in its data dir.

- `lukhas.pid`: the supervising process's id, held under an exclusive
  `flock` for the host's whole life. The lock, not the number, says whether a
  host runs: the kernel drops it when the process dies however it dies, so a
  file left by a killed host is replaced, and a recycled pid never looks alive.
- `lukhas.reload`: the outcome of the host's latest reload, one JSON object
  replaced atomically, which `lukhas reload` waits for.

Both are removed when the host exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from .._core.private_files import private_directory

__all__ = ["HostLock", "HostRunning", "ReloadOutcome", "running_host"]

PID_FILE = "lukhas.pid"
RELOAD_FILE = "lukhas.reload"
#: A probe (`lukhas reload`) holds the lock shared for a moment; a starting
#: host retries this long before it takes a held lock for a live host.
_PROBE_WAIT_S = 0.5


class HostRunning(Exception):
    """Another host holds the data dir; one line."""


class HostLock:
    """The data dir's pid file, locked while this process hosts."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / PID_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the data dir for this process; HostRunning if a live host has it."""
        private_directory(self.data_dir)
        deadline = time.monotonic() + _PROBE_WAIT_S
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                pid = _read_pid(self.path)
                raise HostRunning(f"a host is already running on data dir {self.data_dir}"
                                  + (f" (pid {pid})" if pid else "")) from None
            # Locked, but the file may have been removed by the host that
            # held it just before (it unlinks, then unlocks): lock the one
            # the path names now.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
            with contextlib.suppress(FileNotFoundError):  # a dead host's outcome is not ours
                (self.data_dir / RELOAD_FILE).unlink()
            return

    def release(self) -> None:
        """Remove the pid file and the reload outcome, then unlock."""
        if self._fd is None:
            return
        for name in (PID_FILE, RELOAD_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / name).unlink()
        os.close(self._fd)  # closing the last descriptor drops the lock
        self._fd = None


def running_host(data_dir: Path) -> int | None:
    """The pid of the live host on `data_dir`, or None if none runs."""
    path = data_dir / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: a host runs
            return _read_pid(path)
        return None  # a file left by a host that died
    finally:
        os.close(fd)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class ReloadOutcome:
    """How one reload ended, as `lukhas reload` reads it.

    `started_ns` is the reload's start on the system's monotonic clock, which
    every process of the machine shares: a reload started after a signal was
    sent is the one that signal asked for (or a later one, which covers it).
    """

    host: int
    generation: int
    started_ns: int
    outcome: Literal["completed", "failed"]
    reason: str | None
    workers: list[int]

    def write(self, data_dir: Path) -> None:
        """Replace the outcome file atomically: a reader sees the old or the new."""
        target = data_dir / RELOAD_FILE
        partial = target.with_name(f"{RELOAD_FILE}.{os.getpid()}.tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self), out)
        os.replace(partial, target)

    @classmethod
    def read(cls, data_dir: Path) -> ReloadOutcome | None:
        """The latest outcome, or None if there is none (or it cannot be read)."""
        try:
            return cls(**json.loads((data_dir / RELOAD_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None
