"""Breaker: the CPU the per-plugin circuit breaker adds to one request, in-process.

- `Breaker.admit()` then `Breaker.record(failed)` for each of ITERATIONS
  simulated requests, as the request path calls them (attribute lookups
  included), on a breaker with the default policy (10 s window, 20 requests,
  ratio 0.5, 10 s cooldown) and the real monotonic clock, so the window's
  ring advances as it would under load.
- Two mixes: every answer a success (a closed breaker's steady state), and
  one failure in ten (still closed: below the ratio). Also, for information,
  `admit()` on an open breaker (a refusal, built with its detail).
- CPU time (`time.process_time`) over each batch divided by its requests,
  the loop's own overhead included (so the figure is an upper bound);
  ROUNDS rounds in which the mixes take turns, garbage collection off while
  timing, one warm-up round not counted; medians. Budget: ≤ 2 µs per request.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from lukhas_kernel._core.settings import KernelSettings
from lukhas_kernel._lifecycle.breaker import Breaker, BreakerPolicy, BreakerState

from ._common import BenchError, Figure, median, progress

__all__ = ["run"]

ITERATIONS = 200_000
ROUNDS = 7
BUDGET_US = 2.0
FAILURE_EVERY = 10  # one answer in this many fails in the mixed batch


class BudgetFigure(Figure):
    """A figure whose stored result also says whether it met its target."""

    def as_json(self) -> dict[str, Any]:
        """The figure as stored, with `within_target` (true, false or null)."""
        return {**super().as_json(), "within_target": self.within_target}


def _policy() -> BreakerPolicy:
    # The defaults, not the environment's: the figure is for the documented policy.
    fields = KernelSettings.model_fields
    return BreakerPolicy(
        window_s=fields["breaker_window_s"].default,
        min_requests=fields["breaker_min_requests"].default,
        failure_ratio=fields["breaker_failure_ratio"].default,
        cooldown_s=fields["breaker_cooldown_s"].default,
    )


def _all_succeed(breaker: Breaker, n: int) -> float:
    """CPU µs per request of admit + record(False), over `n` requests."""
    started = time.process_time()
    for _ in range(n):
        if breaker.admit() is None:
            breaker.record(False)
    return (time.process_time() - started) / n * 1e6


def _mixed(breaker: Breaker, n: int) -> float:
    """CPU µs per request of admit + record, one answer in FAILURE_EVERY failed."""
    pattern = [i % FAILURE_EVERY == 0 for i in range(n)]
    started = time.process_time()
    for failed in pattern:
        if breaker.admit() is None:
            breaker.record(failed)
    return (time.process_time() - started) / n * 1e6


def _refused(breaker: Breaker, n: int) -> float:
    """CPU µs per refused request: admit() on an open breaker."""
    started = time.process_time()
    for _ in range(n):
        breaker.admit()
    return (time.process_time() - started) / n * 1e6


def _open_breaker(policy: BreakerPolicy) -> Breaker:
    # A cooldown far longer than the benchmark, so every admit() is a refusal.
    breaker = Breaker("bench", BreakerPolicy(policy.window_s, 1, 1.0, 86400.0))
    breaker.admit()
    breaker.record(True)
    if breaker.state is not BreakerState.OPEN:
        raise BenchError(f"the breaker did not open: {breaker.state}")
    return breaker


def _round(policy: BreakerPolicy, order: list[str]) -> dict[str, float]:
    """One batch of each measurement, in `order`, each on a fresh breaker."""
    measures: dict[str, Callable[[], float]] = {
        "succeed": lambda: _all_succeed(Breaker("bench", policy), ITERATIONS),
        "mixed": lambda: _mixed(Breaker("bench", policy), ITERATIONS),
        "refused": lambda: _refused(_open_breaker(policy), ITERATIONS),
    }
    gc.collect()
    gc.disable()
    try:
        return {name: measures[name]() for name in order}
    finally:
        gc.enable()


def run() -> list[Figure]:
    """Measure; see the module docstring for exactly what."""
    policy = _policy()
    names = ["succeed", "mixed", "refused"]
    _round(policy, names)  # warm-up: bytecode caches, the allocator
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(ROUNDS):
        order = names[i % len(names):] + names[:i % len(names)]  # each goes first in turn
        for name, value in _round(policy, order).items():
            samples[name].append(value)
    figures = {name: median(values) for name, values in samples.items()}
    progress("CPU per request (µs), rounds: " + "; ".join(
        f"{name} " + " ".join(f"{v:.3f}" for v in values) for name, values in samples.items()))
    return [
        BudgetFigure("admit + record, closed, every answer a success, CPU per request",
                     figures["succeed"], "µs", target=BUDGET_US),
        BudgetFigure(f"admit + record, closed, 1 in {FAILURE_EVERY} answers failed, CPU per request",
                     figures["mixed"], "µs", target=BUDGET_US),
        BudgetFigure("admit, open (a refusal with its detail), CPU per request",
                     figures["refused"], "µs"),
    ]
