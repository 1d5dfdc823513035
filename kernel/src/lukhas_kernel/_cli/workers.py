"""A worker of `lukhas serve`: one host process serving the inherited socket.

The supervisor (`supervisor.py`) starts each worker as a fresh interpreter
(`python -m lukhas_kernel serve --worker-fd … --status-fd …`: never a fork of
a process that has run threads or an event loop), so a worker sees the
distributions and config files as they are when it starts. The first worker
of a host is usually the one the entry point pre-started (`prestart.py`), a
fresh interpreter too, which imported the host while the supervisor started
and is then handed the same fds and runs this same path. A worker loads every
plugin itself and accepts on the inherited socket; the kernel hands each
connection to whichever worker accepts it first.

Invariants:
- a worker reports on its status pipe, in this order and each at most once:
  `prepared` (only a preparing worker: the migrations are done), `ready` (it
  serves), `stopping` (it no longer accepts connections); or, instead of
  `ready`, `failed <exit code> <reason>` just before it exits unable to start;
- only the preparing worker, the first of each generation, migrates and
  creates the first admin; the others start once it is prepared, and find
  every table at its head without importing Alembic.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NoReturn

import click
import structlog

from .._core.logging import configure_logging
from .._core.settings import KernelSettings, SettingsError
from .bootstrap import create_app, first_admin_created, services_of

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["MULTIPROC_ENV", "serve_worker"]

#: The variable prometheus-client reads at import to share metrics through files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = structlog.get_logger("lukhas.workers")


def serve_worker(settings: KernelSettings, config: dict[str, Any], listen_fd: int,
                 status_fd: int | None, *, preparing: bool = False) -> NoReturn:
    """Serve on the inherited socket `listen_fd` until SIGTERM or SIGINT.

    Reports on `status_fd` (see the module's invariants); a failure's reason
    is not printed here: the supervisor prints it once. A `preparing` worker
    migrates, and prints the first admin's token if it created one.
    """
    # The host, imported here: the supervisor imports this module for MULTIPROC_ENV.
    from .._http.serving import ConnectionLimits, serve_app
    from .._services.storage import StorageError

    configure_logging(settings, worker=os.getpid())
    sock = socket.socket(fileno=listen_fd)

    def report(line: str) -> None:
        if status_fd is not None:
            with contextlib.suppress(OSError):  # the supervisor is gone: nobody to tell
                os.write(status_fd, (line.replace("\n", " ") + "\n").encode())

    async def app() -> web.Application:
        application = await create_app(settings, config, first_admin=preparing)
        if preparing:
            _show_first_admin(await first_admin_created(services_of(application)))
            report("prepared")

        async def ready(_: web.Application) -> None:  # after the kernel's start-up
            log.info("worker.ready")
            report("ready")

        application.on_startup.append(ready)
        application.cleanup_ctx.append(_orphan_guard)
        return application

    try:
        serve_app(app(), sock, ConnectionLimits.of(settings), settings.shutdown_grace_s,
                  on_stopping=lambda: report("stopping"))
    except SettingsError as exc:
        report(f"failed 2 {exc}")
        sys.exit(2)
    except StorageError as exc:
        report(f"failed 1 {exc}")
        sys.exit(1)
    sys.exit(0)


def _show_first_admin(created: tuple[str, str] | None) -> None:
    if created:  # printed once, on the terminal; the token never reaches a log
        user_id, token = created
        click.echo(f"Created the first admin user 'admin' (user_id: {user_id}). Its token, shown "
                   f"only this once:\n\n    {token}\n\nUse it as 'Authorization: Bearer <token>'.")


async def _orphan_guard(app: web.Application) -> AsyncIterator[None]:
    """Stop gracefully if the supervisor dies without stopping this worker
    (SIGKILL): workers run in their own session, so nothing else would reach them."""
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
