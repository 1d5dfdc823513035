"""One worker process as the supervisor sees it: how it is started, and what
it reports on its status pipe.

A worker (`workers.py`) writes one line per event to its status pipe:
`prepared` (it migrated: the rest of its generation may start), `ready` (it
serves), `stopping` (it no longer accepts connections) and, before exiting
early, `failed <exit code> <one-line reason>`.

A worker is a fresh interpreter either way: spawned here, or the pre-started
one (`prestart.py`) handed the same socket and status pipe; the supervisor
sees both alike.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["WorkerProcess", "worker_args"]


def worker_args(listen_fd: int, status_fd: int, *, preparing: bool) -> list[str]:
    """The `lukhas` arguments that make a process a worker on these fds: the
    spawned workers' and the pre-started one's, so both run the same path."""
    return ["serve", "--worker-fd", str(listen_fd), "--status-fd", str(status_fd),
            *(["--prepare"] if preparing else [])]


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    status: int  # the read end of its status pipe, non-blocking
    generation: int
    pending: bytes = b""
    prepared: bool = False
    ready: bool = False
    accepting: bool = True  # until it reports `stopping` or exits
    failure: tuple[int, str] | None = None
    kill_at: float | None = None  # monotonic; set once it was asked to stop

    @classmethod
    def spawn(cls, sock: socket.socket, generation: int, env: dict[str, str], *,
              preparing: bool) -> WorkerProcess:
        """Start `lukhas serve` as a worker on the listening socket `sock`."""
        read, write = os.pipe()
        fd = sock.fileno()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "lukhas_kernel", *worker_args(fd, write, preparing=preparing)],
                pass_fds=(fd, write), env=env, stdin=subprocess.DEVNULL,
                # Its own session: a terminal's Ctrl-C or hang-up reaches only
                # the supervisor, which signals each worker once, by its pid.
                start_new_session=True)
        finally:
            os.close(write)
        os.set_blocking(read, False)
        return cls(process, read, generation)

    @classmethod
    def adopt(cls, process: subprocess.Popen[bytes], control: socket.socket, sock: socket.socket,
              generation: int, *, preparing: bool) -> WorkerProcess:
        """Make the waiting pre-started `process` a worker on `sock`: send it,
        on its `control` socket, the listening socket and a new status pipe's
        write end. OSError if it cannot take them (it has exited)."""
        read, write = os.pipe()
        try:
            go = json.dumps({"preparing": preparing}).encode()
            socket.send_fds(control, [go], [sock.fileno(), write])
        except OSError:
            os.close(read)
            raise
        finally:
            os.close(write)  # the worker's copy arrived with the message
        os.set_blocking(read, False)
        return cls(process, read, generation)

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_status(self) -> bool | None:
        """Take what the worker reported: True if something was read, None if
        nothing is there now, False once its status pipe is closed."""
        try:
            chunk = os.read(self.status, 4096)
        except BlockingIOError:
            return None
        if not chunk:
            return False
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            text = line.decode(errors="replace")
            if text == "prepared":
                self.prepared = True
            elif text == "ready":
                self.ready = True
            elif text == "stopping":
                self.accepting = False
            elif text.startswith("failed "):
                code, _, reason = text.removeprefix("failed ").partition(" ")
                self.failure = (int(code) if code.isdigit() else 1, reason)
        return True

    def exit_description(self) -> str:
        """How it ended: "exit code N" or "signal NAME"."""
        code = self.process.returncode
        return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
