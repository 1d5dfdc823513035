"""`lukhas serve`: one listening socket, a supervisor, and generations of workers.

The supervisor binds the socket and never imports a plugin; the workers
(`workers.py`) do all the loading. It starts a *generation* of N workers:
first one preparing worker, which migrates and creates the first admin, then
the other N − 1 once it is prepared. Then it supervises:

- a worker that dies while serving is replaced, at most RESTARTS times per
  RESTART_WINDOW_S (later ones wait);
- SIGHUP reloads: a new generation is started from the settings and
  distributions as they are now, and as each of its workers is ready one
  worker of the old generation is stopped gracefully, so the socket always
  has a worker accepting on it. A generation not ready within
  LUKHAS_RELOAD_TIMEOUT_S, or whose worker exits before serving, is stopped
  and the old workers serve on. A SIGHUP during a reload is queued: one more
  reload runs after this one;
- SIGINT or SIGTERM stops every worker gracefully (the socket is closed here,
  each worker closes its own copy, so new connections are refused from then
  on; each drains for up to LUKHAS_SHUTDOWN_GRACE_S; one still running well
  past that gets SIGKILL), and the supervisor returns.

If the first generation cannot start, it is stopped and `run` raises
CannotStart with the worker's one-line reason.

The first generation's preparing worker is the one the entry point
pre-started (`prestart.py`) when its environment is the one that worker gets
(one worker: no PROMETHEUS_MULTIPROC_DIR); its imports ran while this
process imported the CLI. Every other worker, and reloads, are spawned here.

Invariants:
- the listening socket stays open here until the supervisor stops: between
  generations it always has a listener, so no connection is ever refused;
- at most one generation is starting at a time;
- an old worker is stopped only after a new one reported ready, and the
  reload is done once every old worker has stopped accepting;
- with several workers, every worker starts with the same fresh
  PROMETHEUS_MULTIPROC_DIR (so prometheus-client is in multiprocess mode from
  its first import); the supervisor marks each exited worker dead there and
  removes the directory at exit.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from .._core.settings import KernelSettings, SettingsError
from . import prestart
from .bootstrap import kernel_settings
from .hostfile import ReloadOutcome
from .worker_process import WorkerProcess
from .workers import MULTIPROC_ENV

__all__ = ["CannotStart", "Supervisor"]

#: How long stopping waits, beyond the draining, for a worker to tear its
#: plugins down before SIGKILL.
STOP_WAIT_S = 20.0
#: At most RESTARTS replacements within RESTART_WINDOW_S; further ones wait.
RESTARTS = 5
RESTART_WINDOW_S = 30.0
#: Settings a reload cannot change: the socket and the pid file's lock are the host's.
_KEPT = ("data_dir", "host", "port")
#: How often the supervisor looks at its workers when nothing is reported.
_TICK_S = 0.1

log = structlog.get_logger("lukhas.workers")


class CannotStart(Exception):
    """A worker of the first generation exited before serving; one line."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class _Generation:
    """A generation being started: the first one, or a reload's."""

    number: int
    settings: KernelSettings
    started_ns: int
    deadline: float | None  # monotonic; none for the first generation
    spawned: list[WorkerProcess] = field(default_factory=list)
    replaced: int = 0  # old workers asked to stop, one per ready new one

    @property
    def ready(self) -> list[WorkerProcess]:
        return [w for w in self.spawned if w.ready]


class Supervisor:
    """Keeps a generation of `settings.workers` workers serving `sock`."""

    def __init__(self, settings: KernelSettings, sock: socket.socket, url: str,
                 overrides: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.sock = sock
        self.url = url
        self.data_dir = Path(settings.data_dir)
        self.overrides = overrides or {}  # the command line's, kept over reloads
        self.generation = 0  # the last generation that started completely
        self.workers: dict[int, WorkerProcess] = {}
        self.serving = False  # the first generation is ready
        self._starting: _Generation | None = None
        self._reload_wanted = False
        self._queued_logged = False
        self._stop: int | None = None
        self._selector = selectors.DefaultSelector()
        self._restarts: deque[float] = deque()
        self._delay_logged = False
        self.metrics_dir: str | None = None

    @property
    def count(self) -> int:
        return self.settings.workers

    # -- the loop --------------------------------------------------------------

    def run(self) -> None:
        """Supervise until SIGINT or SIGTERM; CannotStart if the first generation fails."""
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            self._begin(self.settings, deadline=None)
            while self._stop is None:
                for key, _ in self._selector.select(_TICK_S):
                    if key.data.read_status() is False:
                        self._selector.unregister(key.fd)
                for worker in list(self.workers.values()):
                    if worker.process.poll() is not None:
                        self._exited(worker)
                self._kill_overdue()
                if self._starting is not None:
                    self._advance(self._starting)
                elif self._reload_wanted:
                    self._reload()
                else:
                    self._replace_missing()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._selector.close()
            if self.metrics_dir is not None:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
        log.info("workers.stopped", signal=signal.Signals(self._stop).name if self._stop else None)

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload_wanted = True  # taken up by the loop, one reload at a time
        else:
            self._stop = signum

    # -- generations -----------------------------------------------------------

    def _begin(self, settings: KernelSettings, deadline: float | None) -> None:
        number = self.generation + 1
        self._starting = _Generation(number, settings, time.monotonic_ns(), deadline)
        if settings.workers > 1 and self.metrics_dir is None:
            self.metrics_dir = tempfile.mkdtemp(prefix="lukhas-prometheus-")
        self._starting.spawned.append(self._spawn(number, preparing=True))

    def _reload(self) -> None:
        """Start a new generation from the settings as they are now."""
        self._reload_wanted = False
        self._queued_logged = False
        started_ns = time.monotonic_ns()
        try:
            settings, _ = kernel_settings(**self.overrides)
        except SettingsError as exc:
            self._reload_failed(self.generation + 1, started_ns, str(exc))
            return
        changed = [f"LUKHAS_{name.upper()}" for name in _KEPT
                   if getattr(settings, name) != getattr(self.settings, name)]
        if changed:
            self._reload_failed(self.generation + 1, started_ns,
                                f"{', '.join(changed)} changed: a reload keeps the data dir and the "
                                "listen address; restart the host to change them")
            return
        log.info("reload.started", generation=self.generation + 1, workers=settings.workers)
        self._begin(settings, deadline=time.monotonic() + settings.reload_timeout_s)

    def _advance(self, starting: _Generation) -> None:
        """Take the starting generation one step: more workers, old ones
        stopped, done, or failed."""
        if self._reload_wanted and not self._queued_logged:
            self._queued_logged = True
            log.info("reload.queued", generation=starting.number,
                     detail="another reload runs once this one ends")
        failed = next((w for w in starting.spawned if not w.ready and w.process.poll() is not None), None)
        if failed is not None:
            if failed.failure is not None:
                self._generation_failed(starting, *failed.failure)
            else:  # it died without a word (a crash, a signal): its own exit code, if any
                code = failed.process.returncode
                self._generation_failed(starting, code if code > 0 else 1, f"worker {failed.pid} exited "
                                        f"with {failed.exit_description()} before serving; see its log")
            return
        if starting.deadline is not None and time.monotonic() > starting.deadline:
            self._generation_failed(starting, 1, f"generation {starting.number} not ready within "
                                                 f"{starting.settings.reload_timeout_s:g} s")
            return
        first = starting.spawned[0]
        while first.prepared and len(starting.spawned) < starting.settings.workers:
            starting.spawned.append(self._spawn(starting.number, preparing=False))
        older = [w for w in self.workers.values() if w.generation < starting.number]
        while starting.replaced < len(starting.ready):
            candidates = [w for w in older if w.kill_at is None]
            if not candidates:
                break
            self._ask_to_stop(min(candidates, key=lambda w: w.generation))
            starting.replaced += 1
        if len(starting.ready) < starting.settings.workers:
            return
        for worker in older:  # a smaller generation than the last: the rest go too
            if worker.kill_at is None:
                self._ask_to_stop(worker)
        if any(w.accepting for w in older):
            return  # done once no old worker takes a new connection
        self._generation_ready(starting)

    def _generation_ready(self, starting: _Generation) -> None:
        self._starting = None
        self.generation = starting.number
        self.settings = starting.settings
        pids = sorted(w.pid for w in starting.spawned)
        if not self.serving:
            self.serving = True
            log.info("lukhas.listening", url=self.url, workers=self.count, pids=pids,
                     metrics_dir=self.metrics_dir)
            return
        log.info("reload.completed", generation=starting.number, workers=pids,
                 duration_s=round((time.monotonic_ns() - starting.started_ns) / 1e9, 3))
        ReloadOutcome(os.getpid(), starting.number, starting.started_ns, "completed", None,
                      pids).write(self.data_dir)

    def _generation_failed(self, starting: _Generation, code: int, reason: str) -> None:
        """Stop what of the generation does not serve yet; the old workers serve on."""
        self._starting = None
        for worker in starting.spawned:
            if not worker.ready and worker.kill_at is None:
                self._ask_to_stop(worker)
        if not self.serving:
            raise CannotStart(code, reason)
        # Its ready workers stay: each has replaced an old one already.
        self.generation = starting.number if starting.ready else self.generation
        self._reload_failed(starting.number, starting.started_ns, reason)

    def _reload_failed(self, number: int, started_ns: int, reason: str) -> None:
        log.warning("reload.failed", generation=number, reason=reason)
        serving = sorted(w.pid for w in self.workers.values() if w.kill_at is None)
        ReloadOutcome(os.getpid(), number, started_ns, "failed", reason, serving).write(self.data_dir)

    # -- workers ---------------------------------------------------------------

    def _spawn(self, generation: int, *, preparing: bool) -> WorkerProcess:
        env = dict(os.environ)
        if self.metrics_dir is not None:
            env[MULTIPROC_ENV] = self.metrics_dir
        worker = None
        if generation == 1 and preparing and not self.serving:
            # The first worker, pre-started by the entry point if this
            # process began as `lukhas serve` and its environment is the one
            # this worker gets; otherwise it is dismissed here.
            child = prestart.take(env)
            if child is not None:
                worker = child.hand_over(self.sock, generation, preparing=preparing)
        pre_started = worker is not None
        if worker is None:
            worker = WorkerProcess.spawn(self.sock, generation, env, preparing=preparing)
        self.workers[worker.pid] = worker
        self._selector.register(worker.status, selectors.EVENT_READ, worker)
        # Until the host serves, its start is one line (`lukhas.listening`) or
        # the one line of why it cannot start.
        (log.info if self.serving else log.debug)(
            "worker.started", pid=worker.pid, generation=generation, preparing=preparing,
            pre_started=pre_started)
        return worker

    def _forget(self, worker: WorkerProcess) -> None:
        """Drop an exited worker, after what it reported just before exiting."""
        with contextlib.suppress(KeyError):
            self._selector.unregister(worker.status)
        # It has exited, so whatever it wrote is in the pipe now. Not a
        # blocking read: a process it started might still hold the pipe.
        while worker.read_status():
            pass
        os.close(worker.status)
        worker.accepting = False
        del self.workers[worker.pid]
        if self.metrics_dir is not None:
            from prometheus_client import multiprocess  # only a supervisor of several workers needs it

            # Its live gauges (requests in flight) leave the sums; its
            # counters stay: totals never go down when a worker exits.
            mark_dead: Callable[..., None] = multiprocess.mark_process_dead
            mark_dead(worker.pid, self.metrics_dir)

    def _exited(self, worker: WorkerProcess) -> None:
        self._forget(worker)
        starting = self._starting
        if worker.kill_at is not None or (starting is not None and worker in starting.spawned
                                          and not worker.ready):
            return  # asked to stop, or a starting generation's failure (see _advance)
        log.warning("worker.exited", pid=worker.pid, exited_with=worker.exit_description(),
                    reason=worker.failure[1] if worker.failure else None)

    def _replace_missing(self) -> None:
        """Start replacements for workers that died, within the restart rate."""
        missing = self.count - sum(1 for w in self.workers.values() if w.kill_at is None)
        now = time.monotonic()
        while self._restarts and self._restarts[0] <= now - RESTART_WINDOW_S:
            self._restarts.popleft()
        while missing > 0 and len(self._restarts) < RESTARTS:
            self._restarts.append(now)
            missing -= 1
            self._delay_logged = False
            self._spawn(self.generation, preparing=False)
        if missing > 0 and not self._delay_logged:
            self._delay_logged = True
            log.warning("worker.restart_delayed", owed=missing,
                        retry_in_s=round(self._restarts[0] + RESTART_WINDOW_S - now, 1),
                        reason=f"more than {RESTARTS} restarts within {RESTART_WINDOW_S:.0f} s")

    def _ask_to_stop(self, worker: WorkerProcess) -> None:
        """SIGTERM: it stops accepting at once and drains; SIGKILL if it overstays."""
        worker.kill_at = time.monotonic() + self.stop_wait_s()
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(signal.SIGTERM)
        (log.info if self.serving else log.debug)(
            "worker.stopping", pid=worker.pid, generation=worker.generation)

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.kill_at is not None and now > worker.kill_at and worker.process.poll() is None:
                log.warning("worker.killed", pid=worker.pid,
                            reason=f"still running {self.stop_wait_s():.0f} s after SIGTERM")
                worker.process.kill()

    def stop_wait_s(self) -> float:
        """How long stopping waits for a worker before SIGKILL: aiohttp may
        wait the grace twice (for a request, then for its cancellation), then
        the plugins' teardown."""
        return 2 * self.settings.shutdown_grace_s + STOP_WAIT_S

    def _stop_all(self) -> None:
        """Stop listening, SIGTERM every worker, wait for each, SIGKILL an overdue one."""
        # The workers share this socket: it stops listening only once every
        # copy is closed, and no worker is started after this point.
        self.sock.close()
        if self._stop is not None:
            log.info("workers.stopping", signal=signal.Signals(self._stop).name,
                     workers=sorted(self.workers), grace_s=self.settings.shutdown_grace_s)
        for worker in self.workers.values():
            if worker.kill_at is None:
                self._ask_to_stop(worker)
        for worker in list(self.workers.values()):
            assert worker.kill_at is not None
            try:
                worker.process.wait(max(0.0, worker.kill_at - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill_overdue()
                worker.process.wait(10)
            self._forget(worker)

