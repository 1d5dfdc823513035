"""Drift metrics and daily series from the store, through the per-user metrics cache.

A day's drift is computed over everything up to that day's end: the window
is the last 50 interactions before it, and the history's decision counts
are the counts up to that day minus the window's. Only days with
interactions change the value, so only they (and a series' first day) need
a window read; the counts come from the daily aggregates.

The cache is the kernel's (`context.cache`): in this process, or shared by
every host process through Redis, so an update made through one process is
seen by the next read through any other.

A computation is a synchronous function of a connection: a read runs it
through `Database.read` (on SQLite a reader thread, off the event loop), an
update inside its own write (see `VivoxStore.add`).

Nothing read from the store crashes a computation: the day arithmetic is
total (the last representable day has no end, days before the first are left
out), and a stored value the formulas cannot compute over (a non-finite
number written by another tool, say) raises `Uncomputable`, which the routes
answer as a `409` problem.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date
from functools import partial
from typing import TypeVar

import sqlalchemy as sa
from lukhas_kernel import CacheRegion

from . import formulas
from .metrics import VivoxMetrics
from .models import VELOCITY_DAYS, DriftMetrics
from .store import VivoxStore, Window, day_end

T = TypeVar("T", float, tuple[float, float, float, float])

__all__ = ["DriftEngine", "Uncomputable", "UnknownUser"]


class UnknownUser(Exception):
    """No such user in the kernel."""


class Uncomputable(Exception):
    """The user's stored interactions give no finite metrics."""

    def __init__(self, user_id: str, reason: str) -> None:
        super().__init__(f"the stored interactions of {user_id} give no finite drift metrics "
                         f"({reason})")
        self.user_id = user_id


class DriftEngine:
    def __init__(self, store: VivoxStore, metrics: VivoxMetrics,
                 cache: CacheRegion[DriftMetrics], size: int) -> None:
        self.store = store
        self.metrics = metrics
        self.cache = cache
        # The JSON document of the metrics last answered per user, beside those
        # metrics: served again only for the very object it was made from, so it
        # can never disagree with the cache. At most `size` users, oldest out first.
        self._documents: dict[str, tuple[DriftMetrics, bytes]] = {}
        self._size = size

    def invalidate(self, user_id: str) -> None:
        """After an update: no metrics computed before it are served again.

        Other host processes see it once delivered, which the next read does first.
        """
        self.cache.invalidate(user_id)

    async def current(self, user_id: str,
                      on_miss: Callable[[], Awaitable[object]] | None = None) -> DriftMetrics:
        """The user's metrics, from the cache or computed once for all concurrent callers.

        `on_miss` runs before a computation (e.g. to check the user exists).
        """
        async def miss() -> None:
            self.metrics.cache_misses.inc()
            if on_miss is not None:
                await on_miss()

        result, hit = await self.cache.get(user_id, lambda: self.compute(user_id), miss)
        if hit:
            self.metrics.cache_hits.inc()
        return result

    async def current_document(self, user_id: str,
                               on_miss: Callable[[], Awaitable[object]] | None = None) -> bytes:
        """`current` as the JSON document a route answers, made once per cached value."""
        metrics = await self.current(user_id, on_miss)
        made = self._documents.get(user_id)
        if made is None or made[0] is not metrics:
            if made is None and len(self._documents) >= self._size:
                del self._documents[next(iter(self._documents))]
            made = self._documents[user_id] = (metrics, metrics.model_dump_json().encode())
        return made[1]

    async def compute(self, user_id: str) -> DriftMetrics:
        """Metrics from the store, bypassing the cache."""
        return await self.store.db.read(partial(self.compute_on, user_id=user_id))

    def compute_on(self, conn: sa.Connection, user_id: str) -> DriftMetrics:
        """Metrics from what `conn` sees: an update computes them inside its
        write, before it commits."""
        started = time.perf_counter()
        profile = self.store.profile(conn, user_id)
        if profile is None:
            result = DriftMetrics(user_id=user_id, coherence_score=1.0, emotional_stability=1.0,
                                  behavioral_consistency=1.0, drift_velocity=0.0,
                                  overall_drift=0.0, interactions=0, last_updated=None)
        else:
            days = _span(profile.last_day, VELOCITY_DAYS, profile.first_day)
            series = self._series(conn, user_id, days)
            latest = series[-1][1]
            velocity = _finite(user_id, lambda: formulas.slope(
                [(d.toordinal(), v[3]) for d, v in series]))
            result = DriftMetrics(
                user_id=user_id, coherence_score=latest[0], emotional_stability=latest[1],
                behavioral_consistency=latest[2], overall_drift=latest[3], drift_velocity=velocity,
                interactions=profile.interactions, last_updated=profile.updated_at)
        self.metrics.compute_seconds.observe(time.perf_counter() - started)
        return result

    async def series(self, user_id: str, days: int, until: date | None) -> list[tuple[date, float]] | None:
        """Each day's overall drift for `days` days ending on `until`; None if no interactions."""
        def read(conn: sa.Connection) -> list[tuple[date, float]] | None:
            profile = self.store.profile(conn, user_id)
            if profile is None:
                return None
            span = _span(until or profile.last_day, days, profile.first_day)
            return [(day, values[3]) for day, values in self._series(conn, user_id, span)]

        return await self.store.db.read(read)

    def _series(self, conn: sa.Connection, user_id: str, days: list[date]
                ) -> list[tuple[date, tuple[float, float, float, float]]]:
        if not days:
            return []
        totals, later = self.store.decisions_by_day(conn, user_id, days[0])
        # Counts up to a day = all-time counts minus those of the days after it,
        # walked backwards from the series' last day.
        running = totals - sum((c for d, c in later.items() if d > days[-1]), Counter())
        counts_up_to: dict[date, Counter[str]] = {}
        for day in reversed(days):
            counts_up_to[day] = running
            running = running - later.get(day, Counter())
        # A day without interactions repeats the day before: only the first
        # day and days with interactions need their window.
        changed = [day for i, day in enumerate(days) if i == 0 or day in later]
        windows = dict(zip(changed, self.store.windows(
            conn, user_id, [day_end(day) for day in changed]), strict=True))
        out: list[tuple[date, tuple[float, float, float, float]]] = []
        for day in days:
            # The first day always has its window; a later day without one
            # repeats the day before.
            values = (_finite(user_id, partial(_day_values, windows[day], counts_up_to[day]))
                      if day in windows else out[-1][1])
            out.append((day, values))
        return out


def _day_values(window: Window, counts: Counter[str]) -> tuple[float, float, float, float]:
    # The formulas clamp what they answer, which would hide an infinite input.
    if not all(math.isfinite(value) for value in (*window.valences, *window.arousals)):
        raise ValueError("a stored valence or arousal is not a finite number")
    coherence = formulas.coherence_score(window.decisions, len(counts))
    stability = formulas.emotional_stability(window.valences, window.arousals)
    consistency = formulas.behavioral_consistency(window.decisions, counts - window.decisions)
    return coherence, stability, consistency, formulas.overall_drift(coherence, stability, consistency)


def _finite(user_id: str, compute: Callable[[], T]) -> T:
    """`compute()`, or `Uncomputable` if it fails on the stored values or gives
    a value that is not a finite number (which JSON cannot carry)."""
    try:
        result = compute()
    except (ArithmeticError, ValueError) as exc:  # overflow, inf - inf, a math domain error
        raise Uncomputable(user_id, f"{type(exc).__name__}: {exc}") from None
    values = result if isinstance(result, tuple) else (result,)
    if not all(math.isfinite(value) for value in values):
        raise Uncomputable(user_id, "a value that is not a finite number")
    return result


def _span(last: date, days: int, first: date) -> list[date]:
    """`days` calendar days ending on `last`, without those before `first` (or
    before the first representable day)."""
    end = last.toordinal()
    return [date.fromordinal(n) for n in range(max(end - days + 1, first.toordinal(), 1), end + 1)]
