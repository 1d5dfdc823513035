"""The audit trail: hash-chained entries written in the transaction they record.

Entry n stores `prev_hash` (entry n−1's hash, 64 zeros for the first) and
`hash = sha256(canonical JSON of [prev_hash, at, action, glyph_id, actor,
details])`. Altering any stored field breaks that entry's hash; removing or
reordering entries breaks the next entry's `prev_hash`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

import sqlalchemy as sa
import structlog
from lukhas_kernel import Database, UtcDateTime

from . import clock
from .prepared import PreparedInsert

__all__ = ["GENESIS", "AuditChain", "Entry", "audit", "entry_hash", "verify"]

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


_LOCK = sa.text("LOCK TABLE glyphs_audit IN SHARE ROW EXCLUSIVE MODE")
_LOCKED_IN = "lukhas_glyphs_audit_locked_in"  # the connection's transaction that holds the lock

# Statements built once, executed with parameters: compiled once (see
# prepared.py), where building one per entry (a literal per column) costs more
# than the database's work.
_FIELDS = ("at", "action", "glyph_id", "actor", "details", "prev_hash", "hash")
_HEAD = sa.select(audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
_APPEND = PreparedInsert(audit.insert(), _FIELDS)
#: The entry, inserted only if the chain still ends at its `prev_hash`.
_APPEND_AFTER = PreparedInsert(audit.insert().from_select(
    list(_FIELDS),
    sa.select(*(sa.bindparam(name, type_=audit.c[name].type) for name in _FIELDS))
    .where(_HEAD.scalar_subquery() == sa.bindparam("prev_hash", type_=audit.c.prev_hash.type))),
    _FIELDS)


class Entry(NamedTuple):
    """An audit entry before it is chained (its hashes are the chain's)."""

    at: datetime
    action: str
    glyph_id: str | None
    actor: str | None
    details: dict[str, Any]


def entry_hash(prev_hash: str, at: datetime, action: str, glyph_id: str | None,
               actor: str | None, details: dict[str, Any]) -> str:
    payload = json.dumps([prev_hash, at.isoformat(), action, glyph_id, actor, details],
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class AuditChain:
    """Appends entries, remembering the head this process appended last.

    With a remembered head, the first entry of an append is one conditional
    insert that lands only if the chain still ends there; if another process
    appended since (or this process's last transaction rolled back), it reads
    the real head and appends after it. Either way the chain stays whole.
    """

    def __init__(self) -> None:
        self._head: str | None = None

    @staticmethod
    def lock(conn: sa.Connection) -> None:
        """Become the one writer extending the chain until the transaction ends.

        SQLite's BEGIN IMMEDIATE already is one writer. On PostgreSQL the lock
        is self-exclusive; it is taken once per transaction (a batch of binds
        takes it after its savepoints, so no rollback to one releases it).
        """
        if conn.dialect.name != "postgresql":
            return
        transaction = conn.get_transaction()
        if conn.info.get(_LOCKED_IN) is not transaction:  # a round trip saved per bind of a batch
            conn.execute(_LOCK)
            conn.info[_LOCKED_IN] = transaction

    def record(self, conn: sa.Connection, action: str, glyph_id: str | None,
               actor: str | None, details: dict[str, Any]) -> None:
        """Append an entry inside the caller's write transaction (`Database.write`)."""
        self.append(conn, [Entry(clock.now(), action, glyph_id, actor, details)])

    def append(self, conn: sa.Connection, entries: Sequence[Entry]) -> None:
        """Append `entries`, in order, inside the caller's write transaction."""
        if not entries:
            return
        self.lock(conn)
        rows = _linked(self._head, entries) if self._head is not None else None
        if rows is not None and _APPEND_AFTER.execute(conn, rows[0]) == 1:
            rest = rows[1:]
        else:
            rows = rest = _linked(conn.scalar(_HEAD) or GENESIS, entries)
        _APPEND.execute_many(conn, rest)
        # If the transaction rolls back, the next append finds out. Written
        # only by the transaction's thread; appends never overlap (one writer).
        self._head = rows[-1]["hash"]
        for entry in entries:
            log.info("glyphs.audit", audit=True, action=entry.action, glyph_id=entry.glyph_id,
                     actor=entry.actor, **entry.details)


def _linked(prev: str, entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """The rows of `entries` chained after the entry whose hash is `prev`."""
    rows = []
    for entry in entries:
        digest = entry_hash(prev, *entry)
        rows.append({**entry._asdict(), "prev_hash": prev, "hash": digest})
        prev = digest
    return rows


async def verify(db: Database, batch: int = 1000) -> AsyncIterator[tuple[int, str | None]]:
    """Walk the chain in order: yields `(seq, None)` per good entry, then stops at
    the first broken one with `(seq, what is wrong)`."""
    prev, after = GENESIS, 0
    while True:
        statement = audit.select().where(audit.c.seq > after).order_by(audit.c.seq).limit(batch)
        rows = await db.read(partial(_all, statement))
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


def _all(statement: sa.Select[Any], conn: sa.Connection) -> list[sa.Row[Any]]:
    return list(conn.execute(statement).all())
