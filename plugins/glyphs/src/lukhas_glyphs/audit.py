"""The audit trail: hash-chained entries written in the transaction they record.

Entry n stores `prev_hash` (entry n−1's hash, 64 zeros for the first) and
`hash = sha256(canonical JSON of [prev_hash, at, action, glyph_id, actor,
details])`. Altering any stored field breaks that entry's hash; removing or
reordering entries breaks the next entry's `prev_hash`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from lukhas_kernel import Database, UtcDateTime
from sqlalchemy.ext.asyncio import AsyncConnection

from . import clock

__all__ = ["GENESIS", "audit", "entry_hash", "record", "verify"]

GENESIS = "0" * 64
log = structlog.get_logger("lukhas.glyphs.audit")

metadata = sa.MetaData()
audit = sa.Table(
    "glyphs_audit", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("glyph_id", sa.String(40), nullable=True, index=True),
    sa.Column("actor", sa.String(64), nullable=True, index=True),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


def entry_hash(prev_hash: str, at: datetime, action: str, glyph_id: str | None,
               actor: str | None, details: dict[str, Any]) -> str:
    payload = json.dumps([prev_hash, at.isoformat(), action, glyph_id, actor, details],
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


async def record(conn: AsyncConnection, action: str, glyph_id: str | None, actor: str | None,
                 details: dict[str, Any]) -> None:
    """Append an entry inside the caller's transaction (which must be a write one)."""
    if conn.dialect.name == "postgresql":
        # One writer at a time extends the chain (SQLite's BEGIN IMMEDIATE already is).
        await conn.execute(sa.text("LOCK TABLE glyphs_audit IN SHARE ROW EXCLUSIVE MODE"))
    prev = await conn.scalar(sa.select(audit.c.hash).order_by(audit.c.seq.desc()).limit(1))
    prev = prev or GENESIS
    at = clock.now()
    digest = entry_hash(prev, at, action, glyph_id, actor, details)
    await conn.execute(audit.insert().values(at=at, action=action, glyph_id=glyph_id, actor=actor,
                                             details=details, prev_hash=prev, hash=digest))
    log.info("glyphs.audit", audit=True, action=action, glyph_id=glyph_id, actor=actor, **details)


async def verify(db: Database, batch: int = 1000) -> AsyncIterator[tuple[int, str | None]]:
    """Walk the chain in order: yields `(seq, None)` per good entry, then stops at
    the first broken one with `(seq, what is wrong)`."""
    prev, after = GENESIS, 0
    while True:
        async with db.connect() as conn:
            rows = (await conn.execute(
                audit.select().where(audit.c.seq > after).order_by(audit.c.seq).limit(batch))).all()
        if not rows:
            return
        for row in rows:
            if row.prev_hash != prev:
                yield row.seq, "its prev_hash does not match the entry before it"
                return
            if entry_hash(row.prev_hash, row.at, row.action, row.glyph_id, row.actor,
                          row.details) != row.hash:
                yield row.seq, "its contents do not match its hash"
                return
            yield row.seq, None
            prev, after = row.hash, row.seq
