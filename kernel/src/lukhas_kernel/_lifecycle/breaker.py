"""A per-plugin circuit breaker: too many failed answers of a plugin's routes
in a sliding window stop its handlers being called for a cooldown.

It is called only from the event loop thread, so it holds no lock. Every
method is a handful of integer operations: the kernel calls `admit()` and
`record()` around every request of a plugin route.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._core.settings import KernelSettings

__all__ = ["Breaker", "BreakerPolicy", "BreakerState", "Refusal"]

# The window is a ring of this many time slices. An answer stays counted from
# the moment it is recorded until its slice falls out of the ring, that is for
# between (SLICES - 1) / SLICES and all of the window: never longer than the
# window, and at most a twentieth of it shorter.
SLICES = 20
# Seconds left of a cooldown are rounded up; this much float noise in the
# subtraction must not add a whole second.
_EPSILON_S = 1e-6


class BreakerState(enum.StrEnum):
    """Where a breaker is, as `/api/v1/plugins` shows it."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def metric(self) -> int:
        """The value of `lukhas_plugin_breaker_state`: 0 closed, 1 open, 2 half open."""
        return _METRIC[self]


_METRIC = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker opens and for how long (see KernelSettings.breaker_*)."""

    window_s: float
    min_requests: int
    failure_ratio: float
    cooldown_s: float

    @classmethod
    def of(cls, settings: KernelSettings) -> BreakerPolicy:
        """The policy the kernel settings configure."""
        return cls(
            window_s=settings.breaker_window_s,
            min_requests=settings.breaker_min_requests,
            failure_ratio=settings.breaker_failure_ratio,
            cooldown_s=settings.breaker_cooldown_s,
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the breaker turns away: answer `503` with this detail and
    `Retry-After: retry_after_s` without calling the handler."""

    detail: str
    retry_after_s: int


def _seconds(value: float) -> str:
    """A number of seconds as the detail shows it: `10`, not `10.0`."""
    return f"{value:g}"


class Breaker:
    """The circuit breaker of one plugin's routes.

    Closed, it counts answers and failures in the window and opens when the
    policy says so. Open, it refuses every request until the cooldown has
    passed; then it is half open and lets one request through at a time: an
    answer that is not a failure closes it with an empty window, a failure
    opens it for another cooldown.

    Only the probe's answer decides while half open. An answer recorded while
    open, or half open with no probe in flight, belongs to a request admitted
    before the breaker opened: it is counted in the window (so the numbers of
    a later opening are true) but decides nothing. While a probe is in flight
    the next answer is taken as the probe's: requests still running from
    before the opening have run for a whole cooldown already, so the fresh
    probe is by far the likelier to answer first.
    """

    __slots__ = (
        "_answers", "_clock", "_cooldown_s", "_failures", "_min_requests", "_on_change", "_open_until",
        "_per_s", "_plugin", "_prefix", "_probing", "_ratio", "_refusal", "_slot", "_state", "_tick",
        "_total_answers", "_total_failures", "_window_s", "opened_total",
    )

    def __init__(
        self,
        plugin: str,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[Breaker, BreakerState], None] | None = None,
    ) -> None:
        """A closed breaker for `plugin`; `on_change(breaker, previous_state)`
        is called after every change of state."""
        self._plugin = plugin
        self._window_s = policy.window_s
        self._min_requests = policy.min_requests
        self._ratio = policy.failure_ratio
        self._cooldown_s = policy.cooldown_s
        self._clock = clock
        self._on_change = on_change
        self._per_s = SLICES / policy.window_s
        # Invariant: bucket i of _answers / _failures holds the answers and
        # failures recorded during the slice numbered (_tick - (_slot - i) % SLICES),
        # i.e. the current slice is at _slot and older ones precede it around
        # the ring; _total_answers and _total_failures are the sums of the
        # buckets. Advancing to a later slice empties the buckets it passes.
        self._answers = [0] * SLICES
        self._failures = [0] * SLICES
        self._total_answers = 0
        self._total_failures = 0
        self._tick = int(clock() * self._per_s)
        self._slot = 0
        self._state = BreakerState.CLOSED
        self._open_until = 0.0
        self._probing = False
        self._prefix = ""  # the detail of the opening, up to "retry in "
        # The last refusal made, handed out again while its seconds are the
        # same: during an outage every request is refused, and it is immutable.
        self._refusal: Refusal | None = None
        self.opened_total = 0

    @property
    def plugin(self) -> str:
        """The plugin whose routes this breaker guards."""
        return self._plugin

    @property
    def state(self) -> BreakerState:
        """Closed, open or half open."""
        return self._state

    @property
    def reason(self) -> str | None:
        """While open or half open, the detail of the opening (with the whole
        cooldown as the retry delay); None when closed."""
        if self._state is BreakerState.CLOSED:
            return None
        return f"{self._prefix}{max(1, math.ceil(self._cooldown_s - _EPSILON_S))} s"

    def admit(self) -> Refusal | None:
        """None when the request may call its handler, which must then be
        followed by exactly one `record()` or `release()`; else the refusal."""
        state = self._state
        if state is BreakerState.CLOSED:
            return None
        if state is BreakerState.OPEN:
            left = self._open_until - self._clock()
            if left > 0:
                return self._refuse(max(1, math.ceil(left - _EPSILON_S)))
            self._probing = True
            self._change(BreakerState.HALF_OPEN)
            return None
        if self._probing:
            return self._refuse(1)
        self._probing = True
        return None

    def _refuse(self, seconds: int) -> Refusal:
        refusal = self._refusal
        if refusal is None or refusal.retry_after_s != seconds:
            refusal = self._refusal = Refusal(f"{self._prefix}{seconds} s", seconds)
        return refusal

    def record(self, failed: bool) -> None:
        """Count the answer of an admitted request: `failed` for a 500, 502,
        503 or 504 or a handler that timed out (never for a 4xx)."""
        now = self._clock()
        tick = int(now * self._per_s)
        if tick > self._tick:
            self._advance(tick)
        slot = self._slot
        self._answers[slot] += 1
        self._total_answers += 1
        if failed:
            self._failures[slot] += 1
            self._total_failures += 1
        if self._state is BreakerState.CLOSED:
            total = self._total_answers
            if total >= self._min_requests and self._total_failures / total >= self._ratio:
                self._open(now)
        elif self._state is BreakerState.HALF_OPEN and self._probing:
            self._probing = False
            if failed:
                self._open(now)
            else:
                self._close()

    def release(self) -> None:
        """The admitted request ended with no answer to count (the client went
        away or it was cancelled): a probe in flight frees its slot undecided."""
        if self._state is BreakerState.HALF_OPEN:
            self._probing = False

    def reset(self) -> None:
        """Closed with an empty window, as for a freshly restarted plugin."""
        if self._state is BreakerState.CLOSED:
            self._empty()
        else:
            self._close()

    # -- transitions -------------------------------------------------------------

    def _open(self, now: float) -> None:
        self._open_until = now + self._cooldown_s
        self._prefix = (
            f"{self._plugin} circuit open: {self._total_failures} of {self._total_answers} "
            f"requests failed in the last {_seconds(self._window_s)} s; retry in "
        )
        self._refusal = None
        self.opened_total += 1
        self._change(BreakerState.OPEN)

    def _close(self) -> None:
        self._empty()
        self._probing = False
        self._prefix = ""
        self._refusal = None
        self._change(BreakerState.CLOSED)

    def _change(self, state: BreakerState) -> None:
        previous, self._state = self._state, state
        if self._on_change is not None:
            self._on_change(self, previous)

    # -- the window ----------------------------------------------------------------

    def _advance(self, tick: int) -> None:
        """Move the ring on to slice `tick`, emptying the slices passed."""
        steps = tick - self._tick
        self._tick = tick
        if steps >= SLICES:
            self._empty()
            return
        answers, failures, slot = self._answers, self._failures, self._slot
        for _ in range(steps):
            slot = slot + 1 if slot + 1 < SLICES else 0
            self._total_answers -= answers[slot]
            self._total_failures -= failures[slot]
            answers[slot] = failures[slot] = 0
        self._slot = slot

    def _empty(self) -> None:
        for i in range(SLICES):
            self._answers[i] = self._failures[i] = 0
        self._total_answers = self._total_failures = 0
