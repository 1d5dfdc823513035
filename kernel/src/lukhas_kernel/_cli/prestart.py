"""The pre-started first worker: its imports overlap the supervisor's.

`lukhas serve`'s supervisor spends a good part of a start importing the CLI
(click, structlog, pydantic-settings) before it can bind and spawn its first
worker, which then imports all of that again and the whole host. So the
entry point (`lukhas_kernel._cli.main`) starts one worker before importing
anything but the standard library: a fresh interpreter
(`python -m lukhas_kernel._cli.prestarted FD`, see that module) that imports
what a worker needs and then waits on a control socket. The supervisor hands
it the listening socket and a status pipe (`WorkerProcess.adopt`) as the
preparing worker of its first generation, or dismisses it.

Invariants:
- at most one child is pre-started per process, only for a supervisor start
  (`serve`, not a worker, not help), and before the CLI is imported;
- it is handed over at most once, only as the first generation's preparing
  worker, and only when that worker's environment is exactly the one the
  child was started with (with several workers it is not: they share a
  PROMETHEUS_MULTIPROC_DIR, which prometheus-client reads at import);
- a child not handed over is dismissed: its control socket closed (it then
  exits at once, quietly), killed by pid if it lingers, and always waited
  for, so no process is left behind by a supervisor that cannot start;
- this module imports only the standard library and `worker_process`
  (itself standard library only): it runs before everything else.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass

from .worker_process import WorkerProcess

__all__ = ["PreStarted", "dismiss", "start", "starts_supervisor", "take"]

#: The child's module (`python -m`): it imports the host, then waits for go.
CHILD_MODULE = "lukhas_kernel._cli.prestarted"
#: How long a dismissed child may take to notice its closed control socket
#: before it is killed: it watches the socket from its first moments, so
#: this is only a bound.
DISMISS_WAIT_S = 1.0


@dataclass
class PreStarted:
    """A pre-started child waiting for go on `control`."""

    process: subprocess.Popen[bytes]
    control: socket.socket  # the supervisor's end; closing it dismisses the child
    env: dict[str, str]  # the environment it was started with

    def hand_over(self, sock: socket.socket, generation: int, *, preparing: bool) -> WorkerProcess | None:
        """Make it a worker on `sock`; None (and dismissed) if it cannot take it."""
        try:
            return WorkerProcess.adopt(self.process, self.control, sock, generation, preparing=preparing)
        except OSError:  # it exited meanwhile: the supervisor spawns one as usual
            self.dismiss()
            return None
        finally:
            self.control.close()  # it has its fds; nothing more goes this way

    def dismiss(self, *, kill: bool = False) -> None:
        """Close its control socket and wait for it; kill it at once with
        `kill`, else only if it lingers."""
        self.control.close()
        if kill:
            self.process.kill()
        try:
            self.process.wait(DISMISS_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


#: The child waiting for go, if any (this process's only one).
_waiting: PreStarted | None = None


def starts_supervisor(args: list[str]) -> bool:
    """Whether `lukhas ARGS` starts a supervisor: `serve`, neither a worker
    (`--worker-fd`) nor help."""
    if not args or args[0] != "serve":
        return False
    return not any(arg in ("--help", "-h") or arg.split("=", 1)[0] == "--worker-fd" for arg in args[1:])


def start(args: list[str]) -> None:
    """Pre-start one worker if `lukhas ARGS` starts a supervisor."""
    global _waiting
    if _waiting is not None or not starts_supervisor(args):
        return
    # Message boundaries: the go message and its fds arrive whole, or EOF.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = dict(os.environ)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
            # Its own session, as every worker's: a terminal's Ctrl-C or
            # hang-up reaches only the supervisor.
            start_new_session=True)
    except OSError:
        ours.close()
        return  # no pre-started worker: the supervisor spawns its first one as usual
    finally:
        theirs.close()  # only the child holds it: our exit is its EOF
    _waiting = PreStarted(process, ours, env)


def take(env: dict[str, str]) -> PreStarted | None:
    """The waiting child, if it was started with exactly `env`; otherwise it
    is dismissed. Called for the first generation's preparing worker only: any
    later call finds nothing."""
    global _waiting
    child, _waiting = _waiting, None
    if child is None:
        return None
    if child.env != env or child.process.poll() is not None:
        child.dismiss()
        return None
    return child


def dismiss() -> None:
    """Kill and wait for the waiting child, if any: the command ended without
    handing it over (the supervisor could not start, or it was not `serve`)."""
    global _waiting
    child, _waiting = _waiting, None
    if child is not None:
        child.dismiss(kill=True)
