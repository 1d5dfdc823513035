"""Helpers every `lukhas` command shares: settings, running, failing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from .._core.isolation import describe
from .._core.logging import configure_logging
from .._core.settings import KernelSettings, SettingsError
from .._services.accounts import AccountError
from .._services.bundle import database_from
from .._services.storage import Database, StorageError
from .bootstrap import kernel_settings

T = TypeVar("T")


def fail(message: str, code: int) -> NoReturn:
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
    try:
        return asyncio.run(work)
    except SettingsError as exc:
        fail(str(exc), 2)
    except (StorageError, AccountError) as exc:
        fail(str(exc), 1)




def with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    """For plugins' CLI commands: run `work` on the kernel's database.

    Settings come from the environment and config file as for `lukhas serve`;
    a bad setting exits 2, a database that cannot be used exits 1, each with
    one line on stderr. Nothing is migrated.
    """
    loaded, _ = settings()

    async def main() -> T:
        db = database_from(loaded)
        try:
            return await work(db)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StorageError(f"cannot use database {db.shown_url}: {describe(exc)}") from None
        finally:
            await db.dispose()

    return run(main())
