"""Helpers every `lukhas` command shares: settings, running, failing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import click

from ._accounts import AccountError
from ._bootstrap import kernel_settings
from ._logging import configure_logging
from ._settings import KernelSettings, SettingsError
from ._storage import StorageError

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


