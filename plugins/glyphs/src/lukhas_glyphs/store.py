"""Bindings in `glyphs_bindings`; every change audited in its own transaction.

Changes go through one write group: each write returns its audit entry,
and the group appends the entries of a batch to the chain at once. On
PostgreSQL this process's concurrent binds then share one transaction, one
acquisition of the chain's lock (held from the append to the commit only)
and one commit; on SQLite every write is group-committed anyway.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from cachetools import TTLCache
from lukhas_kernel import Database, Page, UtcDateTime, paginate

from . import audit, clock
from .failures import FailureLog
from .models import AuditEntry, AuditQuery, BindRequest, Glyph, GlyphListQuery
from .prepared import PreparedInsert

__all__ = ["GlyphStore", "bindings"]

metadata = audit.metadata  # one MetaData for the plugin's tables
bindings = sa.Table(
    "glyphs_bindings", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("source", sa.String(170), nullable=False),
    sa.Column("target", sa.String(170), nullable=False),
    sa.Column("symbol", sa.String(8), nullable=False),
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Index("glyphs_bindings_owner_created", "owner", "created_at", "id"),
    sa.Index("glyphs_bindings_owner_source", "owner", "source"),
)
_BIND = PreparedInsert(bindings.insert(), [column.name for column in bindings.columns])


def glyph_of(row: Any) -> Glyph:
    return Glyph(glyph_id=row.id, source=row.source, target=row.target, symbol=row.symbol,
                 priority=row.priority, context=row.context, created_by=row.owner,
                 created_at=row.created_at, expires_at=row.expires_at,
                 active=row.revoked_at is None and row.expires_at > clock.now(),
                 revoked_at=row.revoked_at)


class GlyphStore:
    """Reads bindings through a short cache: a validation is a signature check
    and, most of the time, no database round trip. This process's revocations
    clear it at once; another host's are seen within `cache_ttl_s`.

    The cache is this process's own, not a kernel cache region: it holds the
    raw row on the validation hot path, where even a Redis round trip would
    cost more than the signature check it sits beside.
    """

    def __init__(self, db: Database, cache_ttl_s: float = 0.0, cache_size: int = 100_000,
                 audit_window_s: float = 0.0) -> None:
        self.db = db
        self.chain = audit.AuditChain()
        self._audited = db.write_group(self._append)
        self.failures = FailureLog(db, self.chain, audit_window_s)
        self._rows: TTLCache[str, Any] | None = (
            TTLCache(cache_size, cache_ttl_s) if cache_ttl_s > 0 else None)

    async def bind(self, owner: str, request: BindRequest) -> Glyph:
        """Store a binding and its audit entry, committed together."""
        created = clock.now()
        values: dict[str, Any] = {
                  "id": "gly_" + secrets.token_urlsafe(12), "owner": owner, "source": request.source,
                  "target": request.target, "symbol": request.symbol, "priority": request.priority,
                  "context": request.context, "created_at": created,
                  "expires_at": created + timedelta(seconds=request.ttl_seconds), "revoked_at": None}

        def insert(conn: sa.Connection) -> audit.Entry:
            _BIND.execute(conn, values)
            return audit.Entry(clock.now(), "create", values["id"], owner,
                               {"source": request.source, "target": request.target,
                                "symbol": request.symbol, "priority": request.priority})

        await self._audited.write(insert)  # returns once committed, its entry appended
        return Glyph(
            glyph_id=values["id"], source=request.source, target=request.target,
            symbol=request.symbol, priority=request.priority, context=request.context,
            created_by=owner, created_at=created, expires_at=values["expires_at"], active=True)

    async def get(self, glyph_id: str) -> tuple[str, Glyph] | None:
        row = self._rows.get(glyph_id) if self._rows is not None else None
        if row is None:
            row = await self.db.read(  # one row by its primary key
                lambda conn: conn.execute(bindings.select().where(bindings.c.id == glyph_id)).first(),
                short=True)
            if row is None:
                return None
            if self._rows is not None:
                self._rows[glyph_id] = row
        return row.owner, glyph_of(row)  # `active` from the clock, now

    async def page(self, owner: str, query: GlyphListQuery) -> Page[Glyph]:
        statement = bindings.select().where(bindings.c.owner == owner)
        if query.source is not None:
            statement = statement.where(bindings.c.source == query.source)
        if query.active_only:
            statement = statement.where(bindings.c.revoked_at.is_(None),
                                        bindings.c.expires_at > clock.now())
        statement, split = paginate(statement, [bindings.c.created_at, bindings.c.id], query)

        def rows(conn: sa.Connection) -> Page[Glyph]:
            found, next_cursor = split(conn.execute(statement).all())
            items = [glyph_of(row) for row in found]
            return Page[Glyph](items=items, count=len(items), next_cursor=next_cursor)

        return await self.db.read(rows)

    async def revoke(self, glyph_id: str, actor: str) -> bool:
        """Revoke an active binding (audited); False if it was already revoked."""
        def update(conn: sa.Connection) -> audit.Entry | None:
            done = conn.execute(bindings.update().where(
                bindings.c.id == glyph_id, bindings.c.revoked_at.is_(None)).values(
                revoked_at=clock.now()))
            return audit.Entry(clock.now(), "delete", glyph_id, actor, {}) if done.rowcount else None

        revoked = await self._audited.write(update) is not None
        if revoked and self._rows is not None:
            self._rows.pop(glyph_id, None)
        return revoked

    def _append(self, conn: sa.Connection, entries: list[audit.Entry | None]) -> None:
        """The audit entries of a batch's writes, appended at its end (None: nothing changed)."""
        self.chain.append(conn, [entry for entry in entries if entry is not None])

    async def failed_validation(self, glyph_id: str | None, actor: str, reason: str) -> None:
        """Account for a failed validation in the audit trail (aggregated: see failures.py)."""
        await self.failures.record(glyph_id, actor, reason)

    async def active_count(self) -> int:
        return await self.db.read(lambda conn: conn.scalar(
            sa.select(sa.func.count()).select_from(bindings).where(
                bindings.c.revoked_at.is_(None), bindings.c.expires_at > clock.now())) or 0)

    async def audit_page(self, query: AuditQuery) -> Page[AuditEntry]:
        """Audit entries, newest first, after sealing every count of failed validations."""
        await self.failures.seal(open_too=True)
        statement = audit.audit.select()
        if query.glyph_id is not None:
            statement = statement.where(audit.audit.c.glyph_id == query.glyph_id)
        if query.actor is not None:
            statement = statement.where(audit.audit.c.actor == query.actor)
        statement, split = paginate(statement, [audit.audit.c.seq], query)

        def rows(conn: sa.Connection) -> Page[AuditEntry]:
            found, next_cursor = split(conn.execute(statement).all())
            items = [AuditEntry.of(row) for row in found]
            return Page[AuditEntry](items=items, count=len(items), next_cursor=next_cursor)

        return await self.db.read(rows)

    async def ping(self) -> None:
        await self.db.read(lambda conn: conn.execute(sa.select(bindings.c.id).limit(1)).first())
