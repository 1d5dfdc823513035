"""One worker process as the supervisor sees it: how it is started, and what
it reports on its status pipe.

A worker (`workers.py`) writes one line per event to its status pipe:
`prepared` (it migrated: the rest of its generation may start), `ready` (it
serves), `stopping` (it no longer accepts connections) and, before exiting
early, `failed <exit code> <one-line reason>`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["WorkerProcess"]


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
                [sys.executable, "-m", "lukhas_kernel", "serve", "--worker-fd", str(fd),
                 "--status-fd", str(write), *(["--prepare"] if preparing else [])],
                pass_fds=(fd, write), env=env, stdin=subprocess.DEVNULL,
                # Its own session: a terminal's Ctrl-C or hang-up reaches only
                # the supervisor, which signals each worker once, by its pid.
                start_new_session=True)
        finally:
            os.close(write)
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
