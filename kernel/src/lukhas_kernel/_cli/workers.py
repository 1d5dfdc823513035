"""`lukhas serve --workers N`: one listening socket, N host processes serving it.

The parent binds the socket, runs the one-time work (the kernel's and every
plugin's migrations, the first admin) before any worker exists, then starts
N workers as fresh interpreters (`python -m lukhas_kernel serve --worker-fd
…`: never a fork of a process that has run threads or an event loop). Each
worker loads every plugin itself and accepts on the inherited socket; the
kernel hands each connection to whichever worker accepts it first.

The parent supervises: SIGINT or SIGTERM stops every worker gracefully (the
parent closes its copy of the listening socket, the workers get SIGTERM and
each closes its own, so new connections are refused from then on; each
worker drains for up to LUKHAS_SHUTDOWN_GRACE_S; one still running well past
that gets SIGKILL) and the parent exits 0; a worker
that dies while serving is replaced, at most RESTARTS times per
RESTART_WINDOW_S (later ones wait); a worker that cannot start during the
first start stops them all, and the parent exits with its one-line reason.

Invariants:
- only the parent migrates and creates the first admin: workers open storage
  with neither to do (migrations find their head without importing Alembic);
- a worker reports on its status pipe at most once: `ready` once it serves,
  or `failed <exit code> <reason>` just before it exits unable to start;
- with N > 1 every worker starts with the same fresh PROMETHEUS_MULTIPROC_DIR
  in its environment (so prometheus-client is in multiprocess mode from its
  first import); the parent marks each exited worker dead there and removes
  the directory at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

import structlog
from aiohttp import web

from .._core.logging import configure_logging
from .._core.settings import KernelSettings, SettingsError
from .._http.serving import ConnectionLimits, serve_app
from .._services.storage import StorageError
from .bootstrap import create_app, load_kernel, migrate_plugins

__all__ = ["MULTIPROC_ENV", "CannotStart", "Supervisor", "prepare", "serve_worker"]

#: The variable prometheus-client reads at import to share metrics through files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: How long stopping waits, beyond the draining, for the workers to tear
#: their plugins down before SIGKILL.
STOP_WAIT_S = 20.0
#: At most RESTARTS replacements within RESTART_WINDOW_S; further ones wait.
RESTARTS = 5
RESTART_WINDOW_S = 30.0
#: How often the parent looks at its workers when nothing is reported.
_TICK_S = 0.2

log = structlog.get_logger("lukhas.workers")


# -- the parent's one-time work ------------------------------------------------


async def prepare(settings: KernelSettings, config: dict[str, Any]) -> str | None:
    """Migrate the kernel's and every enabled plugin's tables and create the
    first admin, once, before any worker starts; its token, if created.

    Raises SettingsError or StorageError as `lukhas serve` would. A plugin
    whose migration fails is only logged here: each worker then records it
    as failed at its `migrate` stage, as a single process does.
    """
    # Hosting: the parent imports every plugin, so its start is counted for
    # quarantine like a worker's (a plugin whose import kills the process
    # would otherwise take the whole host down at every start).
    kernel = await load_kernel(settings, config, set_up=False, hosting=True)
    try:
        outcomes = await migrate_plugins(kernel, upgrade=settings.auto_migrate)
        for owner, outcome in outcomes.items():
            if outcome != "ok":
                log.warning("plugin.migrate_failed", plugin=owner, reason=outcome)
        assert kernel.services is not None
        return kernel.services.first_admin_token
    finally:
        await kernel.close()


# -- a worker ------------------------------------------------------------------


def serve_worker(settings: KernelSettings, config: dict[str, Any], listen_fd: int,
                 status_fd: int | None) -> NoReturn:
    """Serve on the inherited socket `listen_fd` until SIGTERM or SIGINT.

    Reports `ready` or `failed <code> <reason>` on `status_fd` (see the
    module's invariants); the reason is not printed: the parent prints it once.
    """
    configure_logging(settings, worker=os.getpid())
    sock = socket.socket(fileno=listen_fd)

    def report(line: str) -> None:
        if status_fd is not None:
            with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
                os.write(status_fd, (line.replace("\n", " ") + "\n").encode())

    async def app() -> web.Application:
        application = await create_app(settings, config, first_admin=False)

        async def ready(_: web.Application) -> None:  # after the kernel's start-up
            log.info("worker.ready")
            report("ready")

        application.on_startup.append(ready)
        application.cleanup_ctx.append(_orphan_guard)
        return application

    try:
        serve_app(app(), sock, ConnectionLimits.of(settings), settings.shutdown_grace_s)
    except SettingsError as exc:
        report(f"failed 2 {exc}")
        sys.exit(2)
    except StorageError as exc:
        report(f"failed 1 {exc}")
        sys.exit(1)
    sys.exit(0)


async def _orphan_guard(app: web.Application) -> AsyncIterator[None]:
    """Stop gracefully if the parent dies without stopping this worker (SIGKILL):
    workers run in their own session, so nothing else would reach them."""
    parent = os.getppid()

    async def watch() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(1.0)
        log.warning("worker.orphaned", reason="the supervising process is gone")
        os.kill(os.getpid(), signal.SIGTERM)

    task = asyncio.create_task(watch())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# -- the parent ----------------------------------------------------------------


class CannotStart(Exception):
    """A worker exited before serving during the first start; one line."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    status: int  # the read end of its status pipe
    pending: bytes = b""
    ready: bool = False
    failure: tuple[int, str] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    """Starts `settings.workers` workers on `sock` and keeps that many serving."""

    def __init__(self, settings: KernelSettings, sock: socket.socket, url: str) -> None:
        self.settings = settings
        self.sock = sock
        self.url = url
        self.count = settings.workers
        self.workers: dict[int, _Worker] = {}
        self.serving = False  # every first worker reported ready
        self._stop: int | None = None
        self._selector = selectors.DefaultSelector()
        self._restarts: deque[float] = deque()
        self._owed = 0  # replacements not started yet (rate bound)
        self._delay_logged = False
        self.metrics_dir = tempfile.mkdtemp(prefix="lukhas-prometheus-") if self.count > 1 else None

    def run(self) -> None:
        """Supervise until SIGINT or SIGTERM; CannotStart if the first start fails."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            log.info("workers.starting", workers=self.count, metrics_dir=self.metrics_dir)
            for _ in range(self.count):
                self._spawn()
            while self._stop is None:
                for key, _ in self._selector.select(_TICK_S):
                    if self._read(key.data) is False:
                        self._selector.unregister(key.fd)
                for worker in list(self.workers.values()):
                    if worker.process.poll() is not None:
                        self._exited(worker)
                self._replace_owed()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._selector.close()
            if self.metrics_dir is not None:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
        log.info("workers.stopped", signal=signal.Signals(self._stop).name if self._stop else None)

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        self._stop = signum

    def _spawn(self) -> None:
        read, write = os.pipe()
        env = dict(os.environ)
        if self.metrics_dir is not None:
            env[MULTIPROC_ENV] = self.metrics_dir
        fd = self.sock.fileno()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "lukhas_kernel", "serve", "--worker-fd", str(fd),
                 "--status-fd", str(write)],
                pass_fds=(fd, write), env=env, stdin=subprocess.DEVNULL,
                # Its own session: a terminal's Ctrl-C reaches only the parent,
                # which stops each worker once, by its pid.
                start_new_session=True)
        finally:
            os.close(write)
        os.set_blocking(read, False)
        worker = _Worker(process, read)
        self.workers[worker.pid] = worker
        self._selector.register(read, selectors.EVENT_READ, worker)
        log.info("worker.started", pid=worker.pid)

    def _read(self, worker: _Worker) -> bool | None:
        """Take what the worker reported: True if something was read, None if
        nothing is there now, False once its status pipe is closed."""
        try:
            chunk = os.read(worker.status, 4096)
        except BlockingIOError:
            return None
        if not chunk:
            return False
        worker.pending += chunk
        *lines, worker.pending = worker.pending.split(b"\n")
        for line in lines:
            text = line.decode(errors="replace")
            if text == "ready":
                worker.ready = True
            elif text.startswith("failed "):
                code, _, reason = text.removeprefix("failed ").partition(" ")
                worker.failure = (int(code) if code.isdigit() else 1, reason)
        if not self.serving and len(self.workers) == self.count \
                and all(w.ready for w in self.workers.values()):
            self.serving = True
            log.info("lukhas.listening", url=self.url, workers=self.count, pids=sorted(self.workers))
        return True

    def _forget(self, worker: _Worker) -> None:
        """Drop an exited worker, after what it reported just before exiting."""
        with contextlib.suppress(KeyError):
            self._selector.unregister(worker.status)
        # It has exited, so whatever it wrote is in the pipe now. Not a
        # blocking read: a process it started might still hold the pipe.
        while self._read(worker):
            pass
        os.close(worker.status)
        del self.workers[worker.pid]
        if self.metrics_dir is not None:
            from prometheus_client import multiprocess  # only the parent of several workers needs it

            # Its live gauges (requests in flight) leave the sums; its
            # counters stay: totals never go down when a worker dies.
            mark_dead: Callable[..., None] = multiprocess.mark_process_dead
            mark_dead(worker.pid, self.metrics_dir)

    def _exited(self, worker: _Worker) -> None:
        self._forget(worker)
        code = worker.process.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        if not self.serving and not worker.ready:
            if worker.failure is not None:
                raise CannotStart(*worker.failure)
            raise CannotStart(1, f"worker {worker.pid} exited with {how} before serving; see its log")
        log.warning("worker.exited", pid=worker.pid, exited_with=how,
                    reason=worker.failure[1] if worker.failure else None)
        self._owed += 1

    def _replace_owed(self) -> None:
        now = time.monotonic()
        while self._restarts and self._restarts[0] <= now - RESTART_WINDOW_S:
            self._restarts.popleft()
        while self._owed and len(self._restarts) < RESTARTS:
            self._restarts.append(now)
            self._owed -= 1
            self._delay_logged = False
            self._spawn()
        if self._owed and not self._delay_logged:
            self._delay_logged = True
            log.warning("worker.restart_delayed", owed=self._owed,
                        retry_in_s=round(self._restarts[0] + RESTART_WINDOW_S - now, 1),
                        reason=f"more than {RESTARTS} restarts within {RESTART_WINDOW_S:.0f} s")

    def stop_wait_s(self) -> float:
        """How long stopping waits for the workers before SIGKILL: aiohttp
        may wait the grace twice (for a request, then for its cancellation),
        then the plugins' teardown."""
        return 2 * self.settings.shutdown_grace_s + STOP_WAIT_S

    def _stop_all(self) -> None:
        """Stop listening, SIGTERM every worker, wait up to stop_wait_s(), then SIGKILL by pid."""
        # The workers share this socket: it stops listening only once every
        # copy is closed, and no worker is started after this point.
        self.sock.close()
        if self._stop is not None:
            log.info("workers.stopping", signal=signal.Signals(self._stop).name,
                     workers=sorted(self.workers), grace_s=self.settings.shutdown_grace_s)
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        wait_s = self.stop_wait_s()
        deadline = time.monotonic() + wait_s
        for worker in list(self.workers.values()):
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker.killed", pid=worker.pid,
                            reason=f"still running {wait_s:.0f} s after SIGTERM")
                worker.process.kill()
                worker.process.wait(10)
            self._forget(worker)
