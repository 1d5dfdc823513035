"""Run-time flag values as the admin API set them, in `lukhas_flags`."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from .._services.accounts import metadata, now
from .._services.storage import Database

__all__ = ["FlagStore", "flags"]

flags = sa.Table(
    "lukhas_flags", metadata,
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("value", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(32), nullable=True),
)


class FlagStore:
    """Persisted flag values."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self) -> dict[str, bool]:
        rows = await self.db.read(lambda conn: conn.execute(sa.select(flags.c.name, flags.c.value)).all())
        return {row.name: bool(row.value) for row in rows}

    async def save(self, changes: Mapping[str, bool], actor: str | None) -> None:
        """Write every change in one transaction (all or nothing)."""
        # An upsert: two processes setting a new flag at once must not collide.
        upsert = self.db.upsert(flags)

        def save_all(conn: sa.Connection) -> None:
            for name, value in changes.items():
                values = {"value": value, "updated_at": now(), "updated_by": actor}
                conn.execute(upsert.values(name=name, **values).on_conflict_do_update(
                    index_elements=[flags.c.name], set_=values))

        await self.db.write(save_all)
