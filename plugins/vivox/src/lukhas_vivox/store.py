"""Interactions and their per-user aggregates, in the vivox tables.

- `vivox_interactions`: every interaction, indexed by (user, timestamp, id):
  a window is the last 50 rows of that index before a moment.
- `vivox_daily_decisions`: how often each user made each decision each UTC
  day, kept in step with every insert, so decision counts up to any day come
  from a few rows instead of a scan of the user's history.
- `vivox_users`: per user, the count, first and last interaction, when they
  were last added, and the overall drift then (the population summary).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache, partial
from typing import Any, TypeVar

import sqlalchemy as sa
from lukhas_kernel import Database, UtcDateTime

from .models import WINDOW, Interaction

__all__ = ["Profile", "VivoxStore", "Window"]

R = TypeVar("R")

# SQLite allows 500 terms in a compound SELECT; this stays well under it.
_WINDOWS_PER_QUERY = 100

metadata = sa.MetaData()
interactions = sa.Table(
    "vivox_interactions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("timestamp", UtcDateTime, nullable=False),
    sa.Column("valence", sa.Float, nullable=False),
    sa.Column("arousal", sa.Float, nullable=False),
    sa.Column("decision", sa.String(64), nullable=False),
    sa.Index("vivox_interactions_user_time", "user_id", "timestamp", "id"),
)
daily = sa.Table(
    "vivox_daily_decisions", metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("decision", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)
profiles = sa.Table(
    "vivox_users", metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("interactions", sa.Integer, nullable=False),
    sa.Column("first_at", UtcDateTime, nullable=False),
    sa.Column("last_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("overall_drift", sa.Float, nullable=True),
    sa.Index("vivox_users_drift", "overall_drift"),
)

# Statements built once and run with parameters: building one per request
# (coercing every operand, then keying it for SQLAlchemy's compiled cache)
# costs more than the database's work on it.
_USER = sa.bindparam("user_id", type_=sa.String(64))
_INSERT = interactions.insert()
# (An UPDATE's own parameters may not be named as its columns.)
_SET_DRIFT = profiles.update().where(profiles.c.user_id == sa.bindparam("of_user")).values(
    overall_drift=sa.bindparam("drift", type_=sa.Float))
_PROFILE = profiles.select().where(profiles.c.user_id == _USER)
_TOTALS = (sa.select(daily.c.decision, sa.func.sum(daily.c.count))
           .where(daily.c.user_id == _USER).group_by(daily.c.decision))
_LATER = (sa.select(daily.c.day, daily.c.decision, daily.c.count)
          .where(daily.c.user_id == _USER, daily.c.day > sa.bindparam("after", type_=sa.Date)))
_POPULATION = sa.select(sa.func.count(), sa.func.avg(profiles.c.overall_drift))
_PING = sa.select(profiles.c.user_id).limit(1)


@dataclass(frozen=True)
class Profile:
    interactions: int
    first_day: date
    last_day: date
    updated_at: datetime


@dataclass(frozen=True)
class Window:
    """The last interactions before a moment (order does not matter to the formulas)."""

    valences: list[float]
    arousals: list[float]
    decisions: Counter[str]


def day_end(day: date) -> datetime | None:
    """The first moment after `day` (UTC); None after the last representable
    day, which nothing stored can be later than."""
    if day == date.max:
        return None
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


class VivoxStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        least, greatest = (sa.func.min, sa.func.max) if db.is_sqlite else (sa.func.least, sa.func.greatest)
        count = db.upsert(daily)
        self._count = count.on_conflict_do_update(
            index_elements=[daily.c.user_id, daily.c.day, daily.c.decision],
            set_={"count": daily.c.count + count.excluded["count"]})
        # The row inserted is the batch's own summary: on conflict, merged into the stored one.
        added = db.upsert(profiles)
        self._profile = added.on_conflict_do_update(
            index_elements=[profiles.c.user_id],
            set_={"interactions": profiles.c.interactions + added.excluded.interactions,
                  "first_at": least(profiles.c.first_at, added.excluded.first_at),
                  "last_at": greatest(profiles.c.last_at, added.excluded.last_at),
                  "updated_at": added.excluded.updated_at})

    async def add(self, user_id: str, batch: Sequence[Interaction],
                  compute: Callable[[sa.Connection], R], drift: Callable[[R], float]) -> R:
        """Store `batch` and its aggregates, then `compute(connection)` over the
        would-be state and keep its `drift(...)` as the user's overall drift, in
        one write (`Database.write`: on SQLite one savepoint of a group commit):
        when anything fails (the computation included), nothing is stored."""
        rows: list[dict[str, Any]] = [
            {"user_id": user_id, "timestamp": i.timestamp.astimezone(UTC), "valence": i.valence,
             "arousal": i.arousal, "decision": i.decision} for i in batch]
        per_day = Counter((row["timestamp"].date(), row["decision"]) for row in rows)
        counts = [{"user_id": user_id, "day": day, "decision": decision, "count": n}
                  for (day, decision), n in sorted(per_day.items())]
        summary = {"user_id": user_id, "interactions": len(rows),
                   "first_at": min(row["timestamp"] for row in rows),
                   "last_at": max(row["timestamp"] for row in rows), "updated_at": datetime.now(UTC)}

        def write(conn: sa.Connection) -> R:
            conn.execute(_INSERT, rows)
            conn.execute(self._count, counts)
            conn.execute(self._profile, summary)
            result = compute(conn)
            conn.execute(_SET_DRIFT, {"of_user": user_id, "drift": drift(result)})
            return result

        return await self.db.write(write)

    @staticmethod
    def profile(conn: sa.Connection, user_id: str) -> Profile | None:
        row = conn.execute(_PROFILE, {"user_id": user_id}).first()
        if row is None:
            return None
        return Profile(row.interactions, row.first_at.date(), row.last_at.date(), row.updated_at)

    @staticmethod
    def windows(conn: sa.Connection, user_id: str, ends: Sequence[datetime | None]) -> list[Window]:
        """The user's last `WINDOW` interactions before each of `ends` (None: of all).

        One indexed read per end, sent as one statement per `_WINDOWS_PER_QUERY`
        ends: each statement is a round trip to the driver.
        """
        found: list[Window] = [Window([], [], Counter()) for _ in ends]
        for start in range(0, len(ends), _WINDOWS_PER_QUERY):
            chunk = ends[start:start + _WINDOWS_PER_QUERY]
            statement = _windows_statement(tuple(end is not None for end in chunk))
            values: dict[str, Any] = {f"end_{k}": end for k, end in enumerate(chunk)
                                      if end is not None}
            for k, valence, arousal, decision in conn.execute(statement, {"user_id": user_id, **values}):
                window = found[start + k]
                window.valences.append(valence)
                window.arousals.append(arousal)
                window.decisions[decision] += 1
        return found

    @staticmethod
    def decisions_by_day(conn: sa.Connection, user_id: str,
                         after: date) -> tuple[Counter[str], dict[date, Counter[str]]]:
        """All-time decision counts, and the counts of each day after `after`."""
        totals = Counter({decision: n for decision, n in conn.execute(_TOTALS, {"user_id": user_id})})
        later: dict[date, Counter[str]] = {}
        for day, decision, n in conn.execute(_LATER, {"user_id": user_id, "after": after}):
            later.setdefault(day, Counter())[decision] += n
        return totals, later

    async def population(self, top: int) -> tuple[int, float | None, Sequence[Any]]:
        return await self.db.read(partial(_population, top))

    async def ping(self) -> None:
        await self.db.read(lambda conn: conn.execute(_PING).all(), short=True)


@lru_cache(maxsize=256)
def _windows_statement(bounded: tuple[bool, ...]) -> sa.CompoundSelect:
    """The windows of `len(bounded)` ends, each before its `end_<k>` (or of
    all interactions where `bounded[k]` is False), rows tagged with `k`."""
    parts = []
    for k, has_end in enumerate(bounded):
        before = (interactions.c.timestamp < sa.bindparam(f"end_{k}", type_=UtcDateTime)
                  if has_end else sa.true())
        last = (sa.select(sa.literal(k).label("k"), interactions.c.valence,
                          interactions.c.arousal, interactions.c.decision)
                .where(interactions.c.user_id == _USER, before)
                .order_by(interactions.c.timestamp.desc(), interactions.c.id.desc())
                .limit(WINDOW).subquery())
        parts.append(sa.select(last))
    return sa.union_all(*parts)


def _population(top: int, conn: sa.Connection) -> tuple[int, float | None, Sequence[Any]]:
    users, mean = conn.execute(_POPULATION).one()
    rows = conn.execute(
        sa.select(profiles.c.user_id, profiles.c.overall_drift, profiles.c.interactions)
        .where(profiles.c.overall_drift.is_not(None))
        .order_by(profiles.c.overall_drift.desc(), profiles.c.user_id).limit(top)).all()
    return users, mean, rows
