"""Helpers every `lukhas` command shares: settings, running, failing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from .._core.logging import configure_logging
from .._core.settings import KernelSettings, SettingsError
from .bootstrap import kernel_settings

if TYPE_CHECKING:
    from .._services.storage import Database

# The storage and account modules (SQLAlchemy) are imported by the helpers
# that use a database, not here: `lukhas serve`'s supervising process and
# `--help` use this module without ever opening one.

T = TypeVar("T")


def fail(message: str, code: int) -> NoReturn:
    """Print `lukhas: MESSAGE` as the one line on stderr and exit with `code`."""
    click.echo(f"lukhas: {message}", err=True)
    sys.exit(code)


def settings(**overrides: Any) -> tuple[KernelSettings, dict[str, Any]]:
    """Settings or exit 2 with one line naming the variable."""
    try:
        loaded, config = kernel_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        fail(str(exc), 2)
    configure_logging(loaded)
    return loaded, config


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; a settings error exits 2, storage or account errors exit 1."""
    from .._services.accounts import AccountError
    from .._services.storage import StorageError

    try:
        return asyncio.run(work)
    except SettingsError as exc:
        fail(str(exc), 2)
    except (StorageError, AccountError) as exc:
        fail(str(exc), 1)


def missing_database(loaded: KernelSettings) -> Path | None:
    """The SQLite file the settings name, when it does not exist; None when it
    does, for an in-memory database, and for a server (not checked here: a
    server's database is created by whoever runs the server). A URL that is
    not one the kernel can use is left to opening it, which names the setting."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from .._services.storage import default_url

    try:
        url = make_url(loaded.database_url or default_url(loaded.data_dir))
    except ArgumentError:
        return None
    if url.drivername != "sqlite+aiosqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database or "")
    return None if path.exists() else path


def require_database(loaded: KernelSettings) -> None:
    """Exit 2 with one line when there is no database to work on.

    Only `serve` and `db upgrade` create the database: a command that reads
    or changes data would otherwise create an empty one wherever it was run
    from (the default data dir is relative), and report on that instead.
    """
    missing = missing_database(loaded)
    if missing is not None:
        fail(f"no database at {missing}; start the host or set LUKHAS_DATA_DIR", 2)


def with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    """For plugins' CLI commands: run `work` on the kernel's database.

    Settings come from the environment and config file as for `lukhas serve`;
    a bad setting or no database at all exits 2, a database that cannot be
    used exits 1, each with one line on stderr. Nothing is created or migrated.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from .._core.isolation import describe
    from .._services.bundle import database_from
    from .._services.storage import StorageError

    loaded, _ = settings()
    require_database(loaded)

    async def main() -> T:
        db = database_from(loaded)
        try:
            return await work(db)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StorageError(f"cannot use database {db.shown_url}: {describe(exc)}") from None
        finally:
            await db.dispose()

    return run(main())
