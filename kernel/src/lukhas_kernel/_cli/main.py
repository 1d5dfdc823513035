"""The `lukhas` command line: serve, plugins list, doctor, and plugin commands.

Each command imports what it uses when it runs: `lukhas serve` is two
processes, a supervisor that only binds, spawns and watches, and workers
that load everything; neither should pay for the other's imports.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import structlog

from .._core.isolation import describe
from .._core.settings import HostSettings, KernelSettings, SettingsError, load_config_file, load_settings
from .common import fail as _fail
from .common import missing_database, require_database, with_database
from .common import run as _run
from .common import settings as _settings
from .group import PLUGIN_COMMANDS_HELP, LukhasGroup
from .hostfile import HostLock, HostRunning, ReloadOutcome, running_host

if TYPE_CHECKING:
    from .._plugin.states import PluginView, StartupReport
    from .._services.starts import Quarantine
    from .._services.storage import Database

__all__ = ["main"]


@click.group(cls=LukhasGroup, epilog=PLUGIN_COMMANDS_HELP)
@click.version_option(package_name="lukhas-kernel")
def main() -> None:
    """Lukhas: a plugin kernel for Python HTTP services."""


@main.command()
@click.option("--host", help="Listen address (LUKHAS_HOST).")
@click.option("--port", type=int, help="Listen port (LUKHAS_PORT).")
@click.option("--workers", type=int, help="Host processes serving the port (LUKHAS_WORKERS, default 1).")
@click.option("--worker-fd", type=int, hidden=True)  # a worker: the listening socket
@click.option("--status-fd", type=int, hidden=True)  # ... the pipe it reports to the supervisor on
@click.option("--prepare", is_flag=True, hidden=True)  # ... and whether it migrates first
def serve(host: str | None, port: int | None, workers: int | None, worker_fd: int | None,
          status_fd: int | None, prepare: bool) -> None:
    """Start the host: load every enabled plugin, then serve HTTP; reload on SIGHUP."""
    overrides = {"host": host, "port": port, "workers": workers}
    settings, config = _settings(**overrides)
    if worker_fd is not None:
        from .workers import serve_worker

        serve_worker(settings, config, worker_fd, status_fd, preparing=prepare)
    from .supervisor import CannotStart, Supervisor

    lock = HostLock(Path(settings.data_dir))
    try:
        lock.acquire()
    except HostRunning as exc:
        _fail(str(exc), 1)
    except OSError as exc:
        _fail(f"cannot use data dir {settings.data_dir}: {describe(exc)}", 1)
    try:
        # Bind now, so a taken port fails before any plugin loads; the workers
        # listen on it only once started, so nobody reaches a host not yet ready.
        sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((settings.host, settings.port))
        except OSError as exc:
            sock.close()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            _fail(f"cannot listen on {settings.host}:{settings.port}: {reason}", 1)
        url = f"http://{settings.host}:{sock.getsockname()[1]}"
        try:
            Supervisor(settings, sock, url, {k: v for k, v in overrides.items() if v is not None}).run()
        except CannotStart as exc:
            _fail(str(exc), exc.code)
        finally:
            sock.close()
    finally:
        lock.release()


@main.command()
def reload() -> None:
    """Reload the host serving this data dir (SIGHUP) and wait for the outcome.

    Exits 0 once the new generation of workers serves, 1 if the reload
    failed (the old one serves on), 2 if no host is running.
    """
    settings = _host_settings()
    data_dir = Path(settings.data_dir)
    pid = running_host(data_dir)
    if pid is None:
        _fail(f"no host is running on data dir {data_dir}", 2)
    sent_ns = time.monotonic_ns()
    os.kill(pid, signal.SIGHUP)
    # The host bounds a reload by its own timeout; this only guards against
    # a host that stopped answering altogether.
    wait_s = 2 * settings.reload_timeout_s + 60
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        outcome = ReloadOutcome.read(data_dir)
        if outcome is not None and outcome.host == pid and outcome.started_ns >= sent_ns:
            if outcome.outcome == "failed":
                _fail(f"reload failed: {outcome.reason}", 1)
            click.echo(f"reload completed: generation {outcome.generation}, workers "
                       f"{', '.join(map(str, outcome.workers))}")
            return
        if running_host(data_dir) != pid:
            _fail(f"the host (pid {pid}) stopped during the reload", 1)
        time.sleep(0.1)
    _fail(f"no outcome from the host (pid {pid}) within {wait_s:.0f} s", 1)


def _host_settings() -> HostSettings:
    """The data dir and the reload timeout, even from a config file that the
    reload will reject: the host is to report what is wrong with it."""
    try:
        return load_settings(HostSettings, load_config_file(), ("kernel",))
    except SettingsError:
        try:
            return load_settings(HostSettings, {}, ("kernel",))  # the environment's alone
        except SettingsError as exc:
            _fail(str(exc), 2)


@main.group()
def plugins() -> None:
    """Inspect installed plugins; release quarantined ones."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def plugins_list(as_json: bool) -> None:
    """Discovered plugins with distribution, version, flag and quarantine (nothing is imported)."""
    from .._flags.parsing import flag_name, load_flags
    from .._lifecycle.discovery import discover
    from .._plugin.states import PluginState

    settings, config = _settings()
    records = discover(settings.extras)
    try:
        flags = load_flags([r.name for r in records if r.state is PluginState.PENDING], config)
    except SettingsError as exc:
        _fail(str(exc), 2)
    quarantined = _run(_read_quarantined(settings))
    rows = [
        {
            "name": r.name,
            "distribution": r.distribution,
            "version": r.version,
            "module": r.module,
            "enabled": flags.get(r.name),
            "flag": flag_name(r.name),
            "problem": r.reason,
            "quarantined": _quarantine_item(quarantined.get(r.name)),
        }
        for r in records
    ]
    if as_json:
        click.echo(json.dumps({"items": rows, "count": len(rows)}, indent=2))
        return
    columns = ["name", "distribution", "version", "enabled", "module"]
    # STATE only when a plugin is quarantined: the usual table keeps its shape.
    if any(row["quarantined"] for row in rows):
        columns.append("state")
    cells = [[_plugin_cell(c, row, quarantined.get(r.name)) for c in columns]
             for r, row in zip(records, rows, strict=True)]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        click.echo("(no plugins found in entry-point group lukhas.plugins)")


@plugins.command("release")
@click.argument("name")
def plugins_release(name: str) -> None:
    """Clear NAME's crash-loop quarantine: it is tried again at the next start."""
    from .._services.starts import StartLedger

    settings, _ = _settings()
    require_database(settings)

    async def release(db: Database) -> bool:
        ledger = StartLedger(db)
        return await ledger.has_tables() and await ledger.release(name, settings.quarantine_after)

    if not with_database(release):
        _fail(f"{name} is not quarantined", 1)
    click.echo(f"released {name}: it is tried again at the next start")


def _plugin_cell(column: str, row: dict[str, Any], quarantine: Quarantine | None) -> str:
    if column == "state":
        return "-" if quarantine is None else f"quarantined ({quarantine.summary})"
    value = row[column]
    return str(value) if value is not None else "-"


def _quarantine_item(quarantine: Quarantine | None) -> dict[str, Any] | None:
    if quarantine is None:
        return None
    return {"failures": quarantine.failures, "stage": quarantine.stage, "reason": quarantine.reason}


async def _read_quarantined(settings: KernelSettings) -> dict[str, Quarantine]:
    """The quarantined plugins, from the database if there is one: a listing
    neither creates a database nor changes one."""
    from sqlalchemy.exc import SQLAlchemyError

    from .._services.bundle import database_from
    from .._services.starts import StartLedger

    if missing_database(settings) is not None:
        return {}
    db = database_from(settings)
    try:
        ledger = StartLedger(db)
        return await ledger.quarantined(settings.quarantine_after) if await ledger.has_tables() else {}
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        # The listing is about what is installed; an unreachable server only
        # leaves the quarantine column out.
        structlog.get_logger("lukhas.cli").warning("plugins.quarantine_unread", reason=describe(exc))
        return {}
    finally:
        await db.dispose()


@main.command()
@click.option("--verbose", is_flag=True,
              help="Add each failed plugin's traceback to its item (`traceback`).")
def doctor(verbose: bool) -> None:
    """Run every plugin's whole start-up with the real timeouts; print JSON.

    Exits 1 when a plugin named in LUKHAS_REQUIRED_PLUGINS is not active or
    degraded (the printed status is then `failed`): a gate for an
    integrator's CI after `pip install`.
    """
    from .bootstrap import load_kernel

    settings, config = _settings()
    require_database(settings)

    async def run() -> tuple[StartupReport, list[dict[str, Any]], list[str]]:
        kernel = await load_kernel(settings, config, first_admin=False)
        report = await kernel.start()
        items = [_doctor_item(view, kernel.records[view.name].traceback, verbose)
                 for view in kernel.view.plugins()]
        missing = kernel.missing_required()
        await kernel.close()
        return report, items, missing

    report, items, missing = _run(run())
    click.echo(json.dumps({
        # The status agrees with the exit code: a gate that fails says so.
        "status": "failed" if missing else report.status,
        "required": settings.required,
        "missing_required": missing,
        "plugins": items,
    }, indent=2))
    if missing:
        sys.exit(1)


def _doctor_item(view: PluginView, traceback: str | None, verbose: bool) -> dict[str, Any]:
    """A plugin as doctor prints it: as `/api/v1/plugins` shows it, and with
    `verbose` a failed one's traceback (null when no exception caused it)."""
    from .._plugin.states import PluginState

    item = view.model_dump(mode="json")
    if verbose and view.state is PluginState.FAILED:
        item["traceback"] = traceback
    return item

