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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from lukhas_kernel import Database, UtcDateTime

from .models import WINDOW, Interaction

if TYPE_CHECKING:  # annotations only: the kernel imports SQLAlchemy's asyncio extension on first use
    from sqlalchemy.ext.asyncio import AsyncConnection

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

    async def add(self, user_id: str, batch: Sequence[Interaction],
                  compute: Callable[[AsyncConnection], Awaitable[R]],
                  drift: Callable[[R], float]) -> R:
        """Store `batch` and its aggregates, then `compute(connection)` over the
        would-be state and keep its `drift(...)` as the user's overall drift, in
        one transaction: when anything fails (the computation included),
        nothing is stored."""
        rows: list[dict[str, Any]] = [
            {"user_id": user_id, "timestamp": i.timestamp.astimezone(UTC), "valence": i.valence,
             "arousal": i.arousal, "decision": i.decision} for i in batch]
        per_day = Counter((row["timestamp"].date(), row["decision"]) for row in rows)
        first = min(row["timestamp"] for row in rows)
        last = max(row["timestamp"] for row in rows)
        now = datetime.now(UTC)
        count_upsert = self.db.upsert(daily)
        profile_upsert = self.db.upsert(profiles)
        async with self.db.begin() as conn:
            await conn.execute(interactions.insert(), rows)
            await conn.execute(
                count_upsert.on_conflict_do_update(
                    index_elements=[daily.c.user_id, daily.c.day, daily.c.decision],
                    set_={"count": daily.c.count + count_upsert.excluded["count"]}),
                [{"user_id": user_id, "day": day, "decision": decision, "count": n}
                 for (day, decision), n in sorted(per_day.items())])
            await conn.execute(profile_upsert.values(
                user_id=user_id, interactions=len(rows), first_at=first, last_at=last,
                updated_at=now).on_conflict_do_update(
                index_elements=[profiles.c.user_id],
                set_={"interactions": profiles.c.interactions + len(rows),
                      "first_at": sa.func.min(profiles.c.first_at, first)
                      if self.db.is_sqlite else sa.func.least(profiles.c.first_at, first),
                      "last_at": sa.func.max(profiles.c.last_at, last)
                      if self.db.is_sqlite else sa.func.greatest(profiles.c.last_at, last),
                      "updated_at": now}))
            result = await compute(conn)
            await conn.execute(profiles.update().where(profiles.c.user_id == user_id)
                               .values(overall_drift=drift(result)))
        return result

    async def profile(self, conn: AsyncConnection, user_id: str) -> Profile | None:
        row = (await conn.execute(profiles.select().where(profiles.c.user_id == user_id))).first()
        if row is None:
            return None
        return Profile(row.interactions, row.first_at.date(), row.last_at.date(), row.updated_at)

    async def windows(self, conn: AsyncConnection, user_id: str,
                      ends: Sequence[datetime | None]) -> list[Window]:
        """The user's last `WINDOW` interactions before each of `ends` (None: of all).

        One indexed read per end, sent as one statement per `_WINDOWS_PER_QUERY`
        ends: each statement is a round trip to the driver.
        """
        found: list[Window] = [Window([], [], Counter()) for _ in ends]
        for start in range(0, len(ends), _WINDOWS_PER_QUERY):
            parts = []
            for k in range(start, min(start + _WINDOWS_PER_QUERY, len(ends))):
                last = (sa.select(sa.literal(k).label("k"), interactions.c.valence,
                                  interactions.c.arousal, interactions.c.decision)
                        .where(interactions.c.user_id == user_id,
                               sa.true() if ends[k] is None else interactions.c.timestamp < ends[k])
                        .order_by(interactions.c.timestamp.desc(), interactions.c.id.desc())
                        .limit(WINDOW).subquery())
                parts.append(sa.select(last))
            for k, valence, arousal, decision in await conn.execute(sa.union_all(*parts)):
                window = found[k]
                window.valences.append(valence)
                window.arousals.append(arousal)
                window.decisions[decision] += 1
        return found

    async def decisions_by_day(self, conn: AsyncConnection, user_id: str,
                               after: date) -> tuple[Counter[str], dict[date, Counter[str]]]:
        """All-time decision counts, and the counts of each day after `after`."""
        totals = Counter({decision: n for decision, n in await conn.execute(
            sa.select(daily.c.decision, sa.func.sum(daily.c.count))
            .where(daily.c.user_id == user_id).group_by(daily.c.decision))})
        later: dict[date, Counter[str]] = {}
        for day, decision, n in await conn.execute(
                sa.select(daily.c.day, daily.c.decision, daily.c.count)
                .where(daily.c.user_id == user_id, daily.c.day > after)):
            later.setdefault(day, Counter())[decision] += n
        return totals, later

    async def population(self, top: int) -> tuple[int, float | None, Sequence[Any]]:
        async with self.db.connect() as conn:
            users, mean = (await conn.execute(
                sa.select(sa.func.count(), sa.func.avg(profiles.c.overall_drift)))).one()
            rows = (await conn.execute(
                sa.select(profiles.c.user_id, profiles.c.overall_drift, profiles.c.interactions)
                .where(profiles.c.overall_drift.is_not(None))
                .order_by(profiles.c.overall_drift.desc(), profiles.c.user_id).limit(top))).all()
        return users, mean, rows

    async def ping(self) -> None:
        await self.db.read(lambda conn: conn.execute(sa.select(profiles.c.user_id).limit(1)).all())
