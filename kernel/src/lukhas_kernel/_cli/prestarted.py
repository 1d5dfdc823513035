"""The pre-started worker's process: `python -m lukhas_kernel._cli.prestarted FD`.

Started by `prestart.py` before the supervisor imports its CLI, so that this
process's imports run while the supervisor's do. It imports what a worker
needs, then waits on its control socket FD for one go message: the listening
socket and the status pipe's write end (SCM_RIGHTS) and `{"preparing": …}`.
It then runs the worker path exactly as a spawned worker does
(`lukhas serve --worker-fd … --status-fd … [--prepare]`).

Invariants:
- before go it imports no plugin and not prometheus_client (which picks its
  multiprocess mode at first import, from the environment the supervisor
  gives its workers), reads no settings and touches no file in the data dir:
  all of that is the worker path's, after go;
- EOF on the control socket without a go message (the supervisor exited or
  dismissed it) ends this process at once, with status 0 and no output,
  even in the middle of its imports: a thread watches the socket from the
  start. That thread ends once go arrives, before the worker path runs.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import threading
from dataclasses import dataclass
from typing import NoReturn

__all__ = ["PRELOAD", "main", "preload"]

#: What a worker imports before it loads a plugin: the CLI, the worker path
#: (`workers.serve_worker`, `bootstrap.create_app`) and the host they build.
PRELOAD = (
    "lukhas_kernel._cli.main",
    "lukhas_kernel._cli.workers",
    "lukhas_kernel._cli.bootstrap",
    "lukhas_kernel._http.serving",
    "lukhas_kernel._http.app",
    "lukhas_kernel._services.storage",
    "lukhas_kernel._services.bundle",
    "lukhas_kernel._lifecycle.kernel",
    "aiohttp.web",
    "sqlalchemy",
)


@dataclass(frozen=True)
class Go:
    """The supervisor's go: the fds this process serves and reports on."""

    listen_fd: int
    status_fd: int
    preparing: bool


def preload() -> None:
    """Import what a worker needs before it loads its plugins (PRELOAD)."""
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:
            # Not reported here: the worker path imports it again after go,
            # and fails there as a spawned worker would, reported once.
            continue


def receive(control: socket.socket) -> Go | None:
    """Wait for the go message; None at EOF or for anything else."""
    try:
        data, fds, _, _ = socket.recv_fds(control, 4096, 2)
    except OSError:
        return None
    try:
        preparing = json.loads(data)["preparing"] if data else None
    except (ValueError, KeyError, TypeError):
        preparing = None
    if len(fds) != 2 or not isinstance(preparing, bool):
        for fd in fds:
            os.close(fd)
        return None
    return Go(fds[0], fds[1], preparing)


def main(control_fd: int) -> NoReturn:
    """Import, wait for go on `control_fd`, then serve as a worker."""
    control = socket.socket(fileno=control_fd)
    arrived: list[Go] = []
    ready = threading.Event()

    def watch() -> None:
        go = receive(control)
        if go is None:
            # Nobody will hand this process a socket: end now, quietly, even
            # mid-import (nothing here has state to save or anything to say).
            os._exit(0)
        arrived.append(go)
        ready.set()

    watcher = threading.Thread(target=watch, name="lukhas-prestart", daemon=True)
    watcher.start()
    preload()
    ready.wait()
    watcher.join()  # no thread of ours runs once the worker path starts
    control.close()
    go = arrived[0]
    from .main import main as commands
    from .worker_process import worker_args

    args = worker_args(go.listen_fd, go.status_fd, preparing=go.preparing)
    sys.argv = [sys.argv[0], *args]
    commands(args=args, prog_name="lukhas")  # standalone: it exits
    sys.exit(0)


if __name__ == "__main__":
    main(int(sys.argv[1]))
