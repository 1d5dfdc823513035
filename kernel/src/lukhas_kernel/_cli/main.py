"""The `lukhas` command line: serve, plugins list, doctor, and plugin commands."""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

import click
import structlog
from aiohttp import web

from .._core.isolation import describe
from .._core.settings import KernelSettings, SettingsError
from .._flags.parsing import flag_name, load_flags
from .._http.serving import ConnectionLimits, serve_app
from .._lifecycle.discovery import discover
from .._plugin.states import PluginState, PluginView, StartupReport
from .._services.storage import StorageError
from .admin import db, tokens, users
from .bootstrap import create_app, load_kernel, services_of
from .common import fail as _fail
from .common import run as _run
from .common import settings as _settings
from .workers import CannotStart, Supervisor, prepare, serve_worker

__all__ = ["main"]


class _LukhasGroup(click.Group):
    """Adds the commands plugins contribute through `lukhas_cli_commands`."""

    def _plugin_commands(self) -> dict[str, click.Command]:
        """Import and register enabled plugins (no setup) to ask for commands."""
        settings, config = _settings()
        kernel = _run(load_kernel(settings, config, set_up=False, storage=False))
        commands: dict[str, click.Command] = {}
        for name in kernel.contexts:
            hook = kernel.implementation("lukhas_cli_commands", name)
            try:
                for command in (hook() if hook else None) or []:
                    commands.setdefault(command.name or name, command)
            except Exception as exc:
                structlog.get_logger("lukhas.cli").warning(
                    "plugin.cli_commands_failed", plugin=name, reason=describe(exc))
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or self._plugin_commands().get(name)


@click.group(cls=_LukhasGroup)
@click.version_option(package_name="lukhas-kernel")
def main() -> None:
    """Lukhas: a plugin kernel for Python HTTP services."""


@main.command()
@click.option("--host", help="Listen address (LUKHAS_HOST).")
@click.option("--port", type=int, help="Listen port (LUKHAS_PORT).")
@click.option("--workers", type=int, help="Host processes serving the port (LUKHAS_WORKERS, default 1).")
@click.option("--worker-fd", type=int, hidden=True)  # a worker of `--workers N`: the listening socket
@click.option("--status-fd", type=int, hidden=True)  # ... and the pipe it reports to its parent on
def serve(host: str | None, port: int | None, workers: int | None, worker_fd: int | None,
          status_fd: int | None) -> None:
    """Start the host: load every enabled plugin, then serve HTTP."""
    settings, config = _settings(host=host, port=port, workers=workers)
    if worker_fd is not None:
        serve_worker(settings, config, worker_fd, status_fd)
    # Bind now, so a taken port fails before plugins load; aiohttp listens on it
    # only once the app has started, so nobody connects to a host not yet ready.
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        _fail(f"cannot listen on {settings.host}:{settings.port}: {reason}", 1)
    url = f"http://{settings.host}:{sock.getsockname()[1]}"
    if settings.workers > 1:
        _serve_workers(settings, config, sock, url)
        return

    async def app() -> web.Application:
        application = await create_app(settings, config)
        _show_first_admin(services_of(application).first_admin_token)

        async def announce(_: web.Application) -> None:
            structlog.get_logger("lukhas.host").info("lukhas.listening", url=url)

        application.on_startup.append(announce)
        return application

    try:
        serve_app(app(), sock, ConnectionLimits.of(settings), settings.shutdown_grace_s)
    except SettingsError as exc:
        _fail(str(exc), 2)
    except StorageError as exc:
        _fail(str(exc), 1)


def _serve_workers(settings: KernelSettings, config: dict[str, Any], sock: socket.socket, url: str) -> None:
    """The parent of `--workers N`: the one-time work, then supervise the workers."""
    _show_first_admin(_run(prepare(settings, config)))
    try:
        Supervisor(settings, sock, url).run()
    except CannotStart as exc:
        _fail(str(exc), exc.code)
    finally:
        sock.close()


def _show_first_admin(token: str | None) -> None:
    if token:  # printed once, on the terminal; it never reaches a log
        click.echo("Created the first admin user 'admin'. Its token, shown only this once:\n"
                   f"\n    {token}\n\nUse it as 'Authorization: Bearer <token>'.")


@main.group()
def plugins() -> None:
    """Inspect installed plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def plugins_list(as_json: bool) -> None:
    """Discovered plugins with distribution, version and flag (nothing is imported)."""
    settings, config = _settings()
    records = discover(settings.extras)
    try:
        flags = load_flags([r.name for r in records if r.state is PluginState.PENDING], config)
    except SettingsError as exc:
        _fail(str(exc), 2)
    rows = [
        {
            "name": r.name,
            "distribution": r.distribution,
            "version": r.version,
            "module": r.module,
            "enabled": flags.get(r.name),
            "flag": flag_name(r.name),
            "problem": r.reason,
        }
        for r in records
    ]
    if as_json:
        click.echo(json.dumps({"items": rows, "count": len(rows)}, indent=2))
        return
    columns = ["name", "distribution", "version", "enabled", "module"]
    cells = [[str(row[c] if row[c] is not None else "-") for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        click.echo("(no plugins found in entry-point group lukhas.plugins)")


@main.command()
def doctor() -> None:
    """Run every plugin's whole start-up with the real timeouts; print JSON.

    Exits 1 when a plugin named in LUKHAS_REQUIRED_PLUGINS is not active or
    degraded: a gate for an integrator's CI after `pip install`.
    """
    settings, config = _settings()

    async def run() -> tuple[StartupReport, list[PluginView], list[str]]:
        kernel = await load_kernel(settings, config, first_admin=False)
        report = await kernel.start()
        views = kernel.view.plugins()
        missing = kernel.missing_required()
        await kernel.close()
        return report, views, missing

    report, views, missing = _run(run())
    click.echo(json.dumps({
        "status": report.status,
        "required": settings.required,
        "missing_required": missing,
        "plugins": [v.model_dump(mode="json") for v in views],
    }, indent=2))
    if missing:
        sys.exit(1)


main.add_command(users)
main.add_command(tokens)
main.add_command(db)
