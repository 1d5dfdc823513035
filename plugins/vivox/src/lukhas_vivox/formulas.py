"""The drift formulas (see the plugin's README), as pure functions of what they read.

Every value is finite and, where the contract says so, clamped to [0, 1]; the
edge cases (fewer than 2 interactions, one decision, no history) are written
out where they apply. Entropies and divergences are in bits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

__all__ = ["behavioral_consistency", "coherence_score", "emotional_stability", "jsd",
           "overall_drift", "slope", "trend", "STABLE_SLOPE"]

#: |slope| per day under which a trend is "stable".
STABLE_SLOPE = 0.005


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def _pstd(values: Sequence[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


def emotional_stability(valences: Sequence[float], arousals: Sequence[float]) -> float:
    """``1 − (std(valence) + 2·std(arousal)) / 2`` (population std), clamped; 1.0 under 2 values."""
    if len(valences) < 2:
        return 1.0
    return _clamp(1 - (_pstd(valences) + 2 * _pstd(arousals)) / 2)


def _entropy(counts: Mapping[str, int]) -> float:
    total = sum(counts.values())
    return -math.fsum(n / total * math.log2(n / total) for n in counts.values() if n)


def coherence_score(window: Mapping[str, int], distinct_ever: int) -> float:
    """``1 − H(window decisions) / log2(k)``, k the distinct decisions ever made; 1.0 when k ≤ 1."""
    if distinct_ever <= 1 or not window:
        return 1.0
    return _clamp(1 - _entropy(window) / math.log2(distinct_ever))


def jsd(p: Mapping[str, int], q: Mapping[str, int]) -> float:
    """Jensen–Shannon divergence of two count distributions, in bits (in [0, 1])."""
    p_total, q_total = sum(p.values()), sum(q.values())
    divergence = 0.0
    for decision in sorted(set(p) | set(q)):  # sorted: the same sum order everywhere
        a, b = p.get(decision, 0) / p_total, q.get(decision, 0) / q_total
        m = (a + b) / 2
        if a:
            divergence += a / 2 * math.log2(a / m)
        if b:
            divergence += b / 2 * math.log2(b / m)
    return _clamp(divergence)


def behavioral_consistency(window: Mapping[str, int], history: Mapping[str, int]) -> float:
    """``1 − JSD(P_window, P_history)``; 1.0 without history."""
    if not sum(history.values()) or not sum(window.values()):
        return 1.0
    return _clamp(1 - jsd(window, history))


def overall_drift(coherence: float, stability: float, consistency: float) -> float:
    """``1 − mean(coherence, stability, consistency)``."""
    return _clamp(1 - (coherence + stability + consistency) / 3)


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0.0 with fewer than 2."""
    if len(points) < 2:
        return 0.0
    mean_x = math.fsum(x for x, _ in points) / len(points)
    mean_y = math.fsum(y for _, y in points) / len(points)
    spread = math.fsum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return math.fsum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def trend(per_day: float) -> Literal["rising", "falling", "stable"]:
    if abs(per_day) < STABLE_SLOPE:
        return "stable"
    return "rising" if per_day > 0 else "falling"
