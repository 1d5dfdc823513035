"""The drift formulas (plugins/vivox/README.md) against values worked out by hand,
and their bounds for any input."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lukhas_vivox import formulas


def test_constant_emotions_are_perfectly_stable():
    assert formulas.emotional_stability([0.3] * 10, [0.7] * 10) == 1.0


def test_stability_by_hand():
    # valence ±1 → std 1; arousal 0/1 → std 0.5: 1 − (1 + 2·0.5)/2 = 0, clamped at 0.
    assert formulas.emotional_stability([1, -1], [0, 1]) == 0.0
    # valence 0.2/0.4 → std 0.1; arousal 0.5/0.7 → std 0.1: 1 − (0.1 + 0.2)/2 = 0.85.
    assert formulas.emotional_stability([0.2, 0.4], [0.5, 0.7]) == pytest.approx(0.85)


def test_fewer_than_two_interactions_are_stable():
    assert formulas.emotional_stability([], []) == 1.0
    assert formulas.emotional_stability([-1], [1]) == 1.0


def test_one_decision_is_coherent():
    assert formulas.coherence_score(Counter(a=50), distinct_ever=1) == 1.0
    assert formulas.coherence_score(Counter(), distinct_ever=0) == 1.0


def test_coherence_by_hand():
    # Window: a, b equally (H = 1 bit); 4 decisions ever (log2 4 = 2): 1 − 1/2.
    assert formulas.coherence_score(Counter(a=5, b=5), distinct_ever=4) == pytest.approx(0.5)
    # Window uses all 4 evenly: H = 2 bits = log2 4 → 0.
    assert formulas.coherence_score(Counter(a=1, b=1, c=1, d=1), distinct_ever=4) == pytest.approx(0)


def test_jsd_by_hand():
    # Disjoint distributions: 1 bit. Identical: 0.
    assert formulas.jsd(Counter(a=3), Counter(b=7)) == pytest.approx(1.0)
    assert formulas.jsd(Counter(a=1, b=1), Counter(a=5, b=5)) == pytest.approx(0.0)
    # P = (1, 0), Q = (½, ½): M = (¾, ¼); JSD = ½·log2(4/3) + ½·(½·log2(2/3) + ½·log2 2).
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25))
    assert formulas.jsd(Counter(a=2), Counter(a=1, b=1)) == pytest.approx(expected)
    assert formulas.behavioral_consistency(Counter(a=2), Counter(a=1, b=1)) == pytest.approx(1 - expected)


def test_no_history_is_consistent():
    assert formulas.behavioral_consistency(Counter(a=3, b=1), Counter()) == 1.0


def test_overall_drift_and_trend():
    assert formulas.overall_drift(1.0, 1.0, 1.0) == 0.0
    assert formulas.overall_drift(0.5, 0.8, 0.2) == pytest.approx(0.5)
    assert formulas.trend(0.004) == "stable" and formulas.trend(-0.0049) == "stable"
    assert formulas.trend(0.005) == "rising" and formulas.trend(-0.01) == "falling"


def test_slope_by_hand():
    assert formulas.slope([(0, 0.1), (1, 0.2), (2, 0.3)]) == pytest.approx(0.1)
    assert formulas.slope([(5, 0.4), (7, 0.0)]) == pytest.approx(-0.2)
    assert formulas.slope([(3, 0.5)]) == 0.0 and formulas.slope([]) == 0.0


unit = st.floats(0, 1, allow_nan=False)
signed = st.floats(-1, 1, allow_nan=False)
decisions = st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 1000), max_size=8)


@given(st.lists(st.tuples(signed, unit), max_size=60))
def test_stability_is_finite_and_in_unit_interval(pairs):
    value = formulas.emotional_stability([v for v, _ in pairs], [a for _, a in pairs])
    assert math.isfinite(value) and 0 <= value <= 1


@given(decisions, decisions)
def test_decision_metrics_are_finite_and_in_unit_interval(window, history):
    ever = Counter(window) + Counter(history)
    for value in (formulas.coherence_score(Counter(window), len(ever)),
                  formulas.behavioral_consistency(Counter(window), Counter(history)),
                  formulas.jsd(Counter(window) or Counter(a=1), Counter(history) or Counter(b=1))):
        assert math.isfinite(value) and 0 <= value <= 1
    overall = formulas.overall_drift(formulas.coherence_score(Counter(window), len(ever)), 0.5,
                                     formulas.behavioral_consistency(Counter(window), Counter(history)))
    assert math.isfinite(overall) and 0 <= overall <= 1


@given(st.lists(st.tuples(st.integers(0, 10_000), unit), max_size=30))
def test_slope_is_finite(points):
    assert math.isfinite(formulas.slope(points))
