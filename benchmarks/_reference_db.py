"""What both peer apps do with the Lukhas host's SQLite file: stdlib `sqlite3`, SQL written out.

The hand-written reference (`reference_app.py`) and the FastAPI app
(`fastapi_app.py`) run these queries on the database file of the Lukhas host
under test, after the benchmark seeded it, and answer the bytes Lukhas
answers; only the framework around them differs. Here: connections, times,
the bearer token check, the dreams page and drift metrics (glyphs:
`_reference_glyphs.py`).

- Times: SQLAlchemy stores a `DateTime` on SQLite as the text
  `YYYY-MM-DD HH:MM:SS.ffffff` (UTC for every Lukhas table); Lukhas's JSON
  writes it as pydantic does, `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, the fraction
  left out when it is 0.
- Caches, with Lukhas's defaults, so both sides do the same work per
  request: a token's user for 5 s (`LUKHAS_AUTH_CACHE_TTL_S`), a user's drift
  metrics for 300 s (`VIVOX_CACHE_TTL_S`; nothing the peers serve updates
  them). Unlike Lukhas, the peers do not record a token's `last_used_at`
  (Lukhas writes it at most once a minute per token: nothing under load).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, TypeVar

from lukhas_vivox import formulas  # the drift formulas themselves: pure functions, no framework

__all__ = ["AUTH_TTL_S", "DRIFT_TTL_S", "Caller", "Expiring", "Invalid", "Tokens", "compact", "connect",
           "drift_metrics", "dreams_page", "from_stored", "json_time", "page_limit", "stored"]

K = TypeVar("K")
V = TypeVar("V")
BUSY_TIMEOUT_MS = 5000
AUTH_TTL_S = 5.0
DRIFT_TTL_S = 300.0
#: JSON as pydantic writes it: no spaces, non-ASCII characters as they are.
compact: Callable[[Any], str] = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)


class Invalid(ValueError):
    """Input a route refuses (422); the message says why."""


def connect(path: str) -> sqlite3.Connection:
    """A connection as Lukhas opens its own: WAL, a busy timeout,
    `synchronous=FULL` (a commit is on disk when it returns) and no implicit
    transactions (a writer says BEGIN IMMEDIATE itself)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode=WAL", f"busy_timeout={BUSY_TIMEOUT_MS}", "synchronous=FULL",
                   "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


# -- times ---------------------------------------------------------------------------


def stored(moment: datetime) -> str:
    """An aware datetime as SQLAlchemy stores it on SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def from_stored(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def json_time(text: str | None) -> str | None:
    """A stored time as pydantic writes it in JSON (see the module docstring)."""
    if text is None:
        return None
    whole, _, fraction = text.partition(".")
    return f"{whole[:10]}T{whole[11:19]}{'.' + fraction if fraction.strip('0') else ''}Z"


# -- caches and the token check ----------------------------------------------------------


class Expiring(Generic[K, V]):
    """A dict whose entries expire `ttl_s` after they were put; at most `size`
    entries (a full cache starts over, which no benchmark reaches)."""

    def __init__(self, ttl_s: float, size: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> tuple[bool, V | None]:
        """(True, value) while `key` is cached, else (False, None)."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: K, value: V) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl_s, value)


@dataclass(frozen=True)
class Caller:
    id: str
    is_admin: bool


_USER_OF_TOKEN = ("SELECT u.id, u.role FROM lukhas_tokens t JOIN lukhas_users u ON u.id = t.user_id "
                  "WHERE t.hash = ? AND t.revoked_at IS NULL")


class Tokens:
    """`Authorization: Bearer lk_…` checked as Lukhas checks it: the SHA-256 of
    the token looked up among the live tokens, the answer cached AUTH_TTL_S."""

    def __init__(self) -> None:
        self._cache: Expiring[str, Caller | None] = Expiring(AUTH_TTL_S)

    def caller(self, conn: sqlite3.Connection, header: str | None) -> Caller | None:
        """The caller the header names, or None (no header, not Bearer, unknown or revoked)."""
        scheme, _, token = (header or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith("lk_"):
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        hit, caller = self._cache.get(digest)
        if not hit:
            row = conn.execute(_USER_OF_TOKEN, (digest,)).fetchone()
            caller = None if row is None else Caller(row[0], row[1] == "admin")
            self._cache.put(digest, caller)
        return caller


# -- dreams ------------------------------------------------------------------------------

_SUMMARY = ("SELECT id, status, mode, branches, depth, seed, fragment_count, created_at, started_at, "
            "finished_at FROM dreams_jobs WHERE owner = ?")
_NEWEST_FIRST = " ORDER BY created_at DESC, id DESC LIMIT ?"
DREAMS_FIRST = _SUMMARY + _NEWEST_FIRST
DREAMS_AFTER = _SUMMARY + " AND (created_at, id) < (?, ?)" + _NEWEST_FIRST
_SUMMARY_KEYS = ("dream_id", "status", "mode", "branches", "depth", "seed", "fragment_count",
                 "created_at", "started_at", "finished_at")


def page_limit(text: str | None) -> int:
    """`?limit=`: 1..100, default 20."""
    if text is None:
        return 20
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise Invalid("limit must be an integer from 1 to 100")
    return int(text)


def _cursor_key(cursor: str) -> tuple[str, str]:
    """The stored (created_at, id) after which a `next_cursor` continues."""
    try:
        created, dream_id = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        moment = datetime.fromisoformat(created)
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise Invalid("not a cursor this list returned") from None
    if moment.tzinfo is None or not isinstance(dream_id, str):
        raise Invalid("not a cursor this list returned")
    return stored(moment), dream_id


def dreams_page(conn: sqlite3.Connection, owner: str, limit: int, cursor: str | None
                ) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the owner's dreams, newest first, as Lukhas's keyset pages
    (its items' fields, times still as stored) and the next cursor."""
    if cursor is None:
        rows = conn.execute(DREAMS_FIRST, (owner, limit + 1)).fetchall()
    else:
        rows = conn.execute(DREAMS_AFTER, (owner, *_cursor_key(cursor), limit + 1)).fetchall()
    items = [dict(zip(_SUMMARY_KEYS, row, strict=True)) for row in rows[:limit]]
    if len(rows) <= limit:
        return items, None
    last = items[-1]
    key = [from_stored(last["created_at"]).isoformat(), last["dream_id"]]
    return items, base64.urlsafe_b64encode(compact(key).encode()).decode()


# -- drift ---------------------------------------------------------------------------

WINDOW, VELOCITY_DAYS = 50, 7
_USER = "SELECT 1 FROM lukhas_users WHERE id = ?"
_PROFILE = "SELECT interactions, first_at, last_at, updated_at FROM vivox_users WHERE user_id = ?"
_TOTALS = "SELECT decision, sum(count) FROM vivox_daily_decisions WHERE user_id = ? GROUP BY decision"
_DAYS_AFTER = "SELECT day, decision, count FROM vivox_daily_decisions WHERE user_id = ? AND day > ?"
_LAST = ("SELECT valence, arousal, decision FROM vivox_interactions WHERE user_id = ?{before} "
         "ORDER BY timestamp DESC, id DESC LIMIT " + str(WINDOW))


def drift_metrics(conn: sqlite3.Connection, user_id: str) -> dict[str, Any] | None:
    """A user's drift metrics, field for field as Lukhas computes them; None
    for a user that does not exist. Invalid when they are not finite."""
    if conn.execute(_USER, (user_id,)).fetchone() is None:
        return None
    profile = conn.execute(_PROFILE, (user_id,)).fetchone()
    if profile is None:
        return {"user_id": user_id, "coherence_score": 1.0, "emotional_stability": 1.0,
                "behavioral_consistency": 1.0, "drift_velocity": 0.0, "overall_drift": 0.0,
                "interactions": 0, "last_updated": None}
    interactions, first_at, last_at, updated_at = profile
    last_day = from_stored(last_at).date()
    first = max(last_day.toordinal() - VELOCITY_DAYS + 1, from_stored(first_at).date().toordinal(), 1)
    series = _series(conn, user_id, [date.fromordinal(n) for n in range(first, last_day.toordinal() + 1)])
    coherence, stability, consistency, drift = series[-1][1]
    velocity = formulas.slope([(day.toordinal(), values[3]) for day, values in series])
    if not all(math.isfinite(v) for v in (coherence, stability, consistency, drift, velocity)):
        raise Invalid(f"the stored interactions of {user_id} give no finite drift metrics")
    return {"user_id": user_id, "coherence_score": coherence, "emotional_stability": stability,
            "behavioral_consistency": consistency, "drift_velocity": velocity, "overall_drift": drift,
            "interactions": interactions, "last_updated": json_time(updated_at)}


def _series(conn: sqlite3.Connection, user_id: str, days: list[date]
            ) -> list[tuple[date, tuple[float, float, float, float]]]:
    """Each day's four values over everything up to its end: the window is the
    last WINDOW interactions before it, the history the decision counts up to
    it less the window's. A day without interactions repeats the day before."""
    totals = Counter({decision: n for decision, n in conn.execute(_TOTALS, (user_id,))})
    later: dict[date, Counter[str]] = {}
    for day, decision, n in conn.execute(_DAYS_AFTER, (user_id, days[0].isoformat())):
        later.setdefault(date.fromisoformat(day), Counter())[decision] += n
    running = totals - sum((c for d, c in later.items() if d > days[-1]), Counter())
    counts_up_to: dict[date, Counter[str]] = {}
    for day in reversed(days):
        counts_up_to[day] = running
        running = running - later.get(day, Counter())
    out: list[tuple[date, tuple[float, float, float, float]]] = []
    for i, day in enumerate(days):
        if i and day not in later:
            out.append((day, out[-1][1]))
            continue
        valences, arousals, decisions = _window(conn, user_id, day)
        counts = counts_up_to[day]
        coherence = formulas.coherence_score(decisions, len(counts))
        stability = formulas.emotional_stability(valences, arousals)
        consistency = formulas.behavioral_consistency(decisions, counts - decisions)
        out.append((day, (coherence, stability, consistency,
                          formulas.overall_drift(coherence, stability, consistency))))
    return out


def _window(conn: sqlite3.Connection, user_id: str, day: date
            ) -> tuple[list[float], list[float], Counter[str]]:
    """The user's last WINDOW interactions before the end of `day`."""
    if day == date.max:  # no end: everything stored is before it
        rows = conn.execute(_LAST.format(before=""), (user_id,)).fetchall()
    else:
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        rows = conn.execute(_LAST.format(before=" AND timestamp < ?"), (user_id, stored(end))).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows], Counter(r[2] for r in rows)
