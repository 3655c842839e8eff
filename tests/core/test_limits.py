"""core.limit_check: the sliding-window counter behind the REST throttles."""

import pytest

from ticketqueue.core import LimitWindow, limit_check

T0 = 1_800_000_000.0  # the start of a minute's window


def run(hits, limit, period):
    """Apply hits at these times; the allowed flags and the final counter."""
    state, flags = None, []
    for now in hits:
        after, wait = limit_check(state, limit, period, now)
        flags.append(wait is None)
        if wait is None:
            state = after
    return flags, state


def test_counts_within_a_window_and_weights_the_previous_one():
    flags, state = run([T0, T0 + 1, T0 + 2, T0 + 3], 3, 60)
    assert flags == [True, True, True, False]
    assert state == LimitWindow(int(T0 // 60), 3, 0)
    # A third of the next window in, 2/3 of the previous three still count: room for one.
    after, wait = limit_check(state, 3, 60, T0 + 80)
    assert wait is None and after == LimitWindow(int(T0 // 60) + 1, 1, 3)


def test_the_wait_lands_exactly_on_the_first_allowed_moment():
    _, state = run([T0 + 10, T0 + 20], 2, 60)
    _, wait = limit_check(state, 2, 60, T0 + 30)
    assert wait == pytest.approx(30 + 30)  # next window, once half of it has passed
    assert limit_check(state, 2, 60, T0 + 30 + wait - 0.001)[1] is not None
    assert limit_check(state, 2, 60, T0 + 30 + wait)[1] is None


def test_a_clock_behind_does_not_reset_the_counter():
    _, state = run([T0 + 60, T0 + 61], 2, 60)
    after, wait = limit_check(state, 2, 60, T0 + 59)  # another host's clock, a second behind
    assert wait is not None and after == state


def test_a_zero_limit_refuses():
    assert limit_check(None, 0, 10, T0)[1] == 10
