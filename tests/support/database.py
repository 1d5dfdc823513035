"""Statements on the database a host runs on, from the test."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from lukhas_kernel._services.storage import Database

T = TypeVar("T")


async def on_database(url: str, fn: Callable[[sa.Connection], T], *, write: bool = False) -> T:
    """`fn(connection)` on the database at `url` as the host runs it (any backend):
    a read, or with `write` a transaction committed when `fn` returns."""
    db = Database(url, timeout_s=10)
    try:
        return await (db.write(fn) if write else db.read(fn))
    finally:
        await db.dispose()
