"""Run-time flags: persisted in `lukhas_flags`, the environment winning.

A flag's value at start-up comes from, in order: the environment or `.env`
when it names the flag, the value last set through the admin API, the config
file, the default. Changes through the API apply at once and are persisted;
other host processes on the same database apply them when they next read the
table (every `FLAGS_POLL_S`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from dotenv import dotenv_values

from .._services.accounts import metadata, now
from .._services.storage import Database

__all__ = ["FLAGS_POLL_S", "FlagStore", "explicit_in_environment"]

#: How often a host process reads `lukhas_flags` for changes made by another
#: one: a change through any process applies in all within this plus a query.
FLAGS_POLL_S = 0.5

flags = sa.Table(
    "lukhas_flags", metadata,
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("value", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(32), nullable=True),
)


def explicit_in_environment(names: Iterable[str], env_file: str | None) -> set[str]:
    """The flag names the environment or the `.env` file sets explicitly."""
    present = {key.upper() for key in os.environ}
    if env_file:
        present |= {key.upper() for key in dotenv_values(env_file)}
    return {name for name in names if name.upper() in present}


class FlagStore:
    """Persisted flag values."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self) -> dict[str, bool]:
        async with self.db.connect() as conn:
            rows = await conn.execute(sa.select(flags.c.name, flags.c.value))
        return {row.name: bool(row.value) for row in rows}

    async def save(self, changes: Mapping[str, bool], actor: str | None) -> None:
        """Write every change in one transaction (all or nothing)."""
        # An upsert: two processes setting a new flag at once must not collide.
        upsert = self.db.upsert(flags)
        async with self.db.begin() as conn:
            for name, value in changes.items():
                values = {"value": value, "updated_at": now(), "updated_by": actor}
                await conn.execute(upsert.values(name=name, **values).on_conflict_do_update(
                    index_elements=[flags.c.name], set_=values))


class RuntimeFlags:
    """Flag values in force, and how a configured value meets a persisted one."""

    def __init__(self, store: FlagStore | None, env_file: str | None) -> None:
        self.store = store
        self.env_file = env_file
        #: Flags plugins declared (`PluginInfo.flags`), by name.
        self.declared: dict[str, bool] = {}
        self._persisted: dict[str, bool] = {}

    async def load_persisted(self) -> None:
        if self.store is not None:
            self._persisted = await self.store.load()

    def remember(self, changes: Mapping[str, bool]) -> None:
        """Note values this process has just persisted (see `changed_elsewhere`)."""
        self._persisted = {**self._persisted, **changes}

    async def changed_elsewhere(self) -> dict[str, bool]:
        """Persisted values that differ from the last ones this process saw:
        changed through another host process sharing the database.

        They become the last seen. Applying the whole difference converges:
        every process ends on the last committed value of each flag.
        """
        if self.store is None:
            return {}
        current = await self.store.load()
        changed = {name: value for name, value in current.items() if self._persisted.get(name) != value}
        self._persisted = current
        return changed

    def persisted(self, name: str) -> bool | None:
        """The value last set through the API, unless the environment names the flag."""
        if name not in self._persisted or explicit_in_environment([name], self.env_file):
            return None
        return self._persisted[name]
