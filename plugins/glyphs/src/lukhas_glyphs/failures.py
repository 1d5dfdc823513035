"""Failed validations in the audit trail, aggregated so a flood stays small.

A caller's failures with one reason and one glyph id (none for a token that
names no stored binding) share a window of `window_s` seconds, opened by
the first of them:

- the first failure is an audit entry of its own at once, in the
  transaction that counts it (details `{"reason"}`, count 1);
- each further failure in the window adds one to the window's row in
  `glyphs_audit_windows`: one row update, committed before the answer, and
  no append to the chain (so no wait for the chain's lock);
- those further failures become one entry, `validate_failed` with details
  `{"reason", "count", "since", "until"}` (first and last of them), when
  the window closes: appended by the same key's next failure or by
  `seal`, which the health check runs. The audit listing also seals the
  counts of windows still open (they stay open, their count back at 0),
  so what it shows accounts for every failure so far.

Invariants: every failure is counted exactly once, in an entry or in a
window's `count` (entries' counts plus windows' counts = failures); a count
leaves its row in the transaction that appends its entry, so it is never
sealed twice or lost; at most one window is open per (caller, reason,
glyph), so a flood of N failures in one window is two entries, not N, plus
one per audit listing that found a count to seal. Entries are ordinary chain
entries, hashed and linked once and never updated: the chain stays
tamper-evident. Only a window's unsealed count (at most `window_s` old) is
not yet covered by it; that the caller failed is, from the first failure.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from lukhas_kernel import Database, UtcDateTime

from . import audit, clock

__all__ = ["FailureLog", "windows"]

#: One row per open window; glyph_id "" stands for "none" (key columns are never NULL).
windows = sa.Table(
    "glyphs_audit_windows", audit.metadata,
    sa.Column("actor", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(16), primary_key=True),
    sa.Column("glyph_id", sa.String(40), primary_key=True),
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("closes_at", UtcDateTime, nullable=False, index=True),
    # Failures not yet in an entry (after the window's first); first_at and
    # last_at are the times of the first and last of them, NULL when 0.
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("first_at", UtcDateTime, nullable=True),
    sa.Column("last_at", UtcDateTime, nullable=True),
)

_KEY = ("actor", "reason", "glyph_id")
_AT = windows.c.closes_at.type
_NOW = sa.bindparam("w_now", type_=_AT)
#: One more failure in the key's window, if it is still open at `w_now`.
_BUMP = (windows.update()
         .where(*(windows.c[name] == sa.bindparam(f"w_{name}") for name in _KEY),
                windows.c.closes_at > _NOW)
         .values(count=windows.c.count + 1, last_at=_NOW,
                 first_at=sa.func.coalesce(windows.c.first_at, _NOW)))
_ORDER = (windows.c.opened_at, *(windows.c[name] for name in _KEY))
#: Windows sealed per transaction by `seal`, so no sweep holds the writer for long.
SEAL_BATCH = 500


def _is(row: Any) -> sa.ColumnElement[bool]:
    """The window row of `row`'s key."""
    return sa.and_(*(windows.c[name] == getattr(row, name) for name in _KEY))


class FailureLog:
    """Counts failed validations into `chain`, `window_s` seconds per window
    (0: every failure is an entry of its own)."""

    def __init__(self, db: Database, chain: audit.AuditChain, window_s: float) -> None:
        self.db = db
        self.chain = chain
        self.window = timedelta(seconds=window_s)

    async def record(self, glyph_id: str | None, actor: str, reason: str) -> None:
        """Account for one failed validation; returns once it is committed."""
        await self.db.write(lambda conn: self._record(conn, glyph_id, actor, reason))

    def _record(self, conn: sa.Connection, glyph_id: str | None, actor: str, reason: str) -> None:
        details = {"reason": reason}
        if not self.window:
            self.chain.record(conn, "validate_failed", glyph_id, actor, details)
            return
        now = clock.now()
        key = {"w_actor": actor, "w_reason": reason, "w_glyph_id": glyph_id or "", "w_now": now}
        if conn.execute(_BUMP, key).rowcount == 1:
            return
        self.chain.lock(conn)
        # Under the lock no other transaction opens or seals a window. Another
        # host may have opened this one since the first try: count it there.
        if conn.execute(_BUMP, key).rowcount == 1:
            return
        # This key's window, if any, has closed: its count becomes an entry.
        self._close(conn, windows.delete().where(*(
            windows.c[name] == key[f"w_{name}"] for name in _KEY)))
        self.chain.record(conn, "validate_failed", glyph_id, actor, details)
        conn.execute(windows.insert(), {
            "actor": actor, "reason": reason, "glyph_id": glyph_id or "", "opened_at": now,
            "closes_at": now + self.window, "count": 0, "first_at": None, "last_at": None})

    async def seal(self, *, open_too: bool = False) -> int:
        """Append the entries of the windows closed by now (and, with `open_too`,
        the counts of the open ones); how many windows were sealed."""
        sealed = 0
        while True:
            now = clock.now()
            wanted = windows.c.closes_at <= now
            if open_too:
                wanted = sa.or_(wanted, windows.c.count > 0)
            due = await self.db.read(partial(_first_due, wanted))
            if due is None:
                return sealed
            batch = await self.db.write(partial(self._seal_batch, now=now, wanted=wanted))
            sealed += batch
            if batch < SEAL_BATCH:  # all there was; a flood still counting waits for next time
                return sealed

    def _seal_batch(self, conn: sa.Connection, now: datetime, wanted: sa.ColumnElement[bool]) -> int:
        self.chain.lock(conn)
        rows = conn.execute(sa.select(*(windows.c[name] for name in _KEY), windows.c.closes_at)
                            .where(wanted).order_by(*_ORDER).limit(SEAL_BATCH)).all()
        for row in rows:
            if row.closes_at <= now:
                self._close(conn, windows.delete().where(_is(row)))
                continue
            # Still open: its count so far becomes an entry, the window stays.
            # The row is locked first, so no increment lands between the read and the reset.
            found = conn.execute(sa.select(windows).where(_is(row)).with_for_update()).first()
            if found is not None and found._mapping["count"] > 0:
                self._append(conn, found)
                conn.execute(windows.update().where(_is(row)).values(
                    count=0, first_at=None, last_at=None))
        return len(rows)

    def _close(self, conn: sa.Connection, delete: sa.Delete) -> None:
        """Remove a window (`delete` names it) and append its unsealed count.

        DELETE … RETURNING answers the count as the delete sees it, after any
        increment that got in first; an increment after it finds no row.
        """
        found = conn.execute(delete.returning(*windows.c)).first()
        if found is not None and found._mapping["count"] > 0:
            self._append(conn, found)

    def _append(self, conn: sa.Connection, window: Any) -> None:
        self.chain.record(conn, "validate_failed", window.glyph_id or None, window.actor, {
            "reason": window.reason, "count": window.count,
            "since": window.first_at.isoformat(), "until": window.last_at.isoformat()})


def _first_due(wanted: sa.ColumnElement[bool], conn: sa.Connection) -> sa.Row[Any] | None:
    return conn.execute(sa.select(windows.c.actor).where(wanted).limit(1)).first()
