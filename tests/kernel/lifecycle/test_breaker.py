"""The per-plugin circuit breaker on its own, with a clock the tests move."""

from __future__ import annotations

import pytest
from lukhas_kernel._core.settings import KernelSettings
from lukhas_kernel._lifecycle.breaker import SLICES, Breaker, BreakerPolicy, BreakerState, Refusal

POLICY = BreakerPolicy(window_s=10.0, min_requests=20, failure_ratio=0.5, cooldown_s=10.0)
OPEN_DETAIL = "dreams circuit open: 10 of 20 requests failed in the last 10 s; retry in "


class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changes() -> list[tuple[BreakerState, BreakerState]]:
    return []


@pytest.fixture
def breaker(clock: Clock, changes: list[tuple[BreakerState, BreakerState]]) -> Breaker:
    return Breaker("dreams", POLICY, clock=clock,
                   on_change=lambda b, previous: changes.append((previous, b.state)))


def answer(breaker: Breaker, failures: int, successes: int = 0) -> None:
    """Admitted requests answered: the failures first, then the successes."""
    for failed in [True] * failures + [False] * successes:
        assert breaker.admit() is None
        breaker.record(failed)


def open_it(breaker: Breaker) -> None:
    """10 successes, then 10 failures: the 20th answer opens it at exactly 0.5."""
    answer(breaker, 0, 10)
    answer(breaker, 10)
    assert breaker.state is BreakerState.OPEN


def test_the_policy_comes_from_the_kernel_settings():
    settings = KernelSettings(breaker_window_s=5, breaker_min_requests=7, breaker_failure_ratio=0.25,
                              breaker_cooldown_s=3)
    assert BreakerPolicy.of(settings) == BreakerPolicy(5.0, 7, 0.25, 3.0)
    assert BreakerPolicy.of(KernelSettings()) == POLICY


def test_state_values_and_metrics():
    assert [(s.value, s.metric) for s in BreakerState] == [("closed", 0), ("open", 1), ("half_open", 2)]


def test_a_new_breaker_is_closed_and_admits(breaker: Breaker):
    assert breaker.state is BreakerState.CLOSED
    assert breaker.reason is None
    assert breaker.opened_total == 0
    assert breaker.admit() is None


def test_it_opens_at_the_ratio_only_after_min_requests(breaker: Breaker, changes):
    answer(breaker, 19)  # every answer failed, but fewer than min_requests
    assert breaker.state is BreakerState.CLOSED
    answer(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_total == 1
    assert changes == [(BreakerState.CLOSED, BreakerState.OPEN)]
    assert breaker.reason == "dreams circuit open: 20 of 20 requests failed in the last 10 s; retry in 10 s"


def test_a_success_that_reaches_min_requests_opens_it_too(breaker: Breaker):
    answer(breaker, 19)
    answer(breaker, 0, 1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.reason.startswith("dreams circuit open: 19 of 20 requests failed")


def test_it_opens_exactly_at_the_ratio(breaker: Breaker):
    open_it(breaker)
    assert breaker.reason == OPEN_DETAIL + "10 s"


def test_it_stays_closed_below_the_ratio(breaker: Breaker):
    answer(breaker, 0, 11)
    answer(breaker, 10)  # 10 of 21 < 0.5
    assert breaker.state is BreakerState.CLOSED
    answer(breaker, 0, 1000)
    answer(breaker, 999)  # 999 of 2000
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit() is None


def test_a_ratio_that_is_not_a_binary_fraction_is_reached_exactly(clock: Clock):
    breaker = Breaker("p", BreakerPolicy(10.0, 30, 0.1, 10.0), clock=clock)
    answer(breaker, 0, 27)
    answer(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    answer(breaker, 1)  # 3 of 30 = 0.1
    assert breaker.state is BreakerState.OPEN


def test_4xx_answers_count_as_answers_not_failures(breaker: Breaker):
    # The caller passes failed=False for a 4xx: it dilutes the failures.
    answer(breaker, 9, 11)
    assert breaker.state is BreakerState.CLOSED


def test_answers_older_than_the_window_leave_it(breaker: Breaker, clock: Clock):
    answer(breaker, 19)
    clock.now += 10.0  # the whole window later: none of them is counted any more
    answer(breaker, 19)
    assert breaker.state is BreakerState.CLOSED
    answer(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.reason.startswith("dreams circuit open: 20 of 20 requests")


def test_answers_within_the_window_stay_counted(breaker: Breaker, clock: Clock):
    answer(breaker, 10)
    clock.now += 10.0 * (SLICES - 1) / SLICES  # the oldest slice still in the ring
    answer(breaker, 10)
    assert breaker.state is BreakerState.OPEN


def test_the_window_slides_slice_by_slice(breaker: Breaker, clock: Clock):
    # One success per half second (one slice) for a while: only the slices
    # still in the ring count, the 19 before the current one.
    for _ in range(60):
        answer(breaker, 0, 1)
        clock.now += 0.5
    answer(breaker, 18)  # 18 of 37
    assert breaker.state is BreakerState.CLOSED
    clock.now += 6.0  # 12 slices on: 12 of the 19 successes leave
    answer(breaker, 1)  # 19 of 26
    assert breaker.state is BreakerState.OPEN
    assert breaker.reason.startswith("dreams circuit open: 19 of 26 requests failed")


def test_refusals_count_the_cooldown_down(breaker: Breaker, clock: Clock):
    open_it(breaker)
    assert breaker.admit() == Refusal(OPEN_DETAIL + "10 s", 10)
    clock.now += 0.3
    assert breaker.admit() == Refusal(OPEN_DETAIL + "10 s", 10)  # 9.7 s left, rounded up
    clock.now += 5.0
    assert breaker.admit() == Refusal(OPEN_DETAIL + "5 s", 5)
    clock.now += 4.6
    assert breaker.admit() == Refusal(OPEN_DETAIL + "1 s", 1)  # 0.1 s left: at least 1
    assert breaker.state is BreakerState.OPEN
    assert breaker.reason == OPEN_DETAIL + "10 s"  # the reason keeps the whole cooldown


def test_after_the_cooldown_it_is_half_open_and_admits_one_probe_at_a_time(breaker: Breaker, clock, changes):
    open_it(breaker)
    clock.now += 10.0
    assert breaker.admit() is None
    assert breaker.state is BreakerState.HALF_OPEN
    assert changes[-1] == (BreakerState.OPEN, BreakerState.HALF_OPEN)
    assert breaker.reason == OPEN_DETAIL + "10 s"
    for _ in range(3):
        assert breaker.admit() == Refusal(OPEN_DETAIL + "1 s", 1)
    clock.now += 100.0  # however long the probe takes
    assert breaker.admit() == Refusal(OPEN_DETAIL + "1 s", 1)


def test_a_probe_that_does_not_fail_closes_it_with_an_empty_window(breaker: Breaker, clock, changes):
    open_it(breaker)
    clock.now += 10.0
    assert breaker.admit() is None
    breaker.record(False)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.reason is None
    assert changes == [(BreakerState.CLOSED, BreakerState.OPEN), (BreakerState.OPEN, BreakerState.HALF_OPEN),
                       (BreakerState.HALF_OPEN, BreakerState.CLOSED)]
    answer(breaker, 19)  # the window is empty again: 19 more failures decide nothing
    assert breaker.state is BreakerState.CLOSED
    assert breaker.opened_total == 1


def test_a_probe_that_fails_opens_it_for_another_cooldown(breaker: Breaker, clock, changes):
    open_it(breaker)
    assert breaker.admit() == Refusal(OPEN_DETAIL + "10 s", 10)
    clock.now += 10.0
    assert breaker.admit() is None
    assert breaker.admit() == Refusal(OPEN_DETAIL + "1 s", 1)
    breaker.record(True)
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_total == 2
    assert changes[-1] == (BreakerState.HALF_OPEN, BreakerState.OPEN)
    # The 20 answers of the first opening have left the window; the probe is the one counted.
    detail = "dreams circuit open: 1 of 1 requests failed in the last 10 s; retry in "
    assert breaker.reason == detail + "10 s"
    assert breaker.admit() == Refusal(detail + "10 s", 10)  # the new opening's detail
    clock.now += 2.5
    assert breaker.admit() == Refusal(detail + "8 s", 8)
    clock.now += 7.5
    assert breaker.admit() is None
    assert breaker.state is BreakerState.HALF_OPEN


def test_a_released_probe_frees_its_slot_without_deciding(breaker: Breaker, clock, changes):
    open_it(breaker)
    clock.now += 10.0
    assert breaker.admit() is None
    breaker.release()
    assert breaker.state is BreakerState.HALF_OPEN
    assert len(changes) == 2
    assert breaker.admit() is None  # the next probe
    assert breaker.admit() == Refusal(OPEN_DETAIL + "1 s", 1)
    breaker.record(False)
    assert breaker.state is BreakerState.CLOSED


def test_release_while_closed_changes_nothing(breaker: Breaker):
    answer(breaker, 19)
    assert breaker.admit() is None
    breaker.release()
    assert breaker.state is BreakerState.CLOSED
    answer(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.reason.startswith("dreams circuit open: 20 of 20 requests")


def test_answers_of_requests_admitted_before_it_opened_decide_nothing(breaker: Breaker, clock):
    for _ in range(3):
        assert breaker.admit() is None  # still running when it opens
    open_it(breaker)
    breaker.record(False)  # open: counted, no decision
    assert breaker.state is BreakerState.OPEN
    clock.now += 10.0
    breaker.record(False)  # half open, no probe in flight yet
    assert breaker.state is BreakerState.OPEN
    assert breaker.admit() is None
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.release()


def test_reset_closes_it_with_an_empty_window(breaker: Breaker, clock, changes):
    open_it(breaker)
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.reason is None
    assert changes[-1] == (BreakerState.OPEN, BreakerState.CLOSED)
    assert breaker.admit() is None
    answer(breaker, 19)
    assert breaker.state is BreakerState.CLOSED
    breaker.reset()  # already closed: no change to report, but the window is emptied
    assert len(changes) == 2
    answer(breaker, 19)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.opened_total == 1


def test_reset_of_a_half_open_breaker(breaker: Breaker, clock, changes):
    open_it(breaker)
    clock.now += 10.0
    assert breaker.admit() is None
    breaker.reset()
    assert changes[-1] == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
    breaker.record(True)  # the probe's late answer: just one failure in a closed window
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit() is None


def test_on_change_sees_the_new_state_and_reason(clock: Clock):
    seen: list[tuple[BreakerState, BreakerState, str | None]] = []
    breaker = Breaker("glyphs", BreakerPolicy(2.5, 2, 1.0, 0.2), clock=clock,
                      on_change=lambda b, previous: seen.append((previous, b.state, b.reason)))
    answer(breaker, 2)
    clock.now += 0.2
    assert breaker.admit() is None
    breaker.record(False)
    detail = "glyphs circuit open: 2 of 2 requests failed in the last 2.5 s; retry in 1 s"
    assert seen == [
        (BreakerState.CLOSED, BreakerState.OPEN, detail),
        (BreakerState.OPEN, BreakerState.HALF_OPEN, detail),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED, None),
    ]


def test_the_cooldown_in_the_reason_is_rounded_up(clock: Clock):
    breaker = Breaker("vivox", BreakerPolicy(60.0, 1, 1.0, 2.2), clock=clock)
    answer(breaker, 1)
    assert breaker.reason == "vivox circuit open: 1 of 1 requests failed in the last 60 s; retry in 3 s"
    assert breaker.admit() == Refusal(breaker.reason, 3)


def test_without_on_change_it_works_alike(clock: Clock):
    breaker = Breaker("p", POLICY, clock=clock)
    open_it(breaker)
    clock.now += 10.0
    assert breaker.admit() is None
    breaker.record(True)
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_total == 2
