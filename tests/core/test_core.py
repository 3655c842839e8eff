"""The pure core: outflow math, ETA, pass claims, state machines, the shuffle."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketqueue import core
from ticketqueue.core import (
    Bucket,
    InvalidTransition,
    OutflowPolicy,
    PassClaims,
    PassInvalid,
    QueueState,
    check_queue_transition,
    estimate_eta,
    flow_in_window,
    line_rate,
    mean_hold,
    measured_rate,
    shuffle_order,
)


def test_allowance_takes_the_smallest_of_room_tokens_waiting_and_limit():
    policy = OutflowPolicy(capacity=10, rate_per_minute=600)
    assert policy.allowance(active=4, waiting=100, tokens=50) == 6
    assert policy.allowance(active=0, waiting=3, tokens=50) == 3
    assert policy.allowance(active=0, waiting=100, tokens=2.9) == 2
    assert policy.allowance(active=0, waiting=100, tokens=50, limit=1) == 1
    assert policy.allowance(active=12, waiting=100, tokens=50) == 0
    assert OutflowPolicy().allowance(active=10**6, waiting=7, tokens=math.inf) == 7


def test_bucket_refills_at_the_rate_up_to_its_size():
    policy = OutflowPolicy(rate_per_minute=60)
    assert policy.bucket_size == 2
    assert policy.refill(Bucket(0, 100.0), 100.5).tokens == pytest.approx(0.5)
    assert policy.refill(Bucket(0, 100.0), 1000.0).tokens == 2
    assert policy.refill(Bucket(1, 100.0), 50.0) == Bucket(1, 100.0)
    assert math.isinf(OutflowPolicy(capacity=3).refill(Bucket(0, 0), 1).tokens)


def test_measured_rate_counts_from_the_first_recent_sample_to_now_and_the_stall_since():
    samples = [(0.0, 0), (10.0, 50), (20.0, 100)]
    assert measured_rate(samples, 20.0, 100) == pytest.approx(5.0)
    assert measured_rate(samples, 22.0, 121) == pytest.approx(5.5)  # admitted since the last
    assert measured_rate(samples, 40.0, 100) == pytest.approx(2.5)  # stalled since 20 s
    assert measured_rate(samples[:1], 6.0, 40) == pytest.approx(40 / 6)  # one sample will do
    assert measured_rate(samples[:1], 4.0, 40) is None  # too short a spell to say
    assert measured_rate([], 4.0, 40) is None
    assert measured_rate(samples, 1000.0, 100) is None  # all too old


def test_the_flow_in_the_window_is_its_first_and_last_sample():
    samples = [(0.0, 0), (10.0, 50), (20.0, 100), (30.0, 120)]
    assert flow_in_window(samples, now=30.0) == ((0.0, 0), (30.0, 120))
    assert flow_in_window(samples, now=310.0) == ((10.0, 50), (30.0, 120))
    assert flow_in_window(samples, now=330.0) == ((30.0, 120),)
    assert flow_in_window(samples, now=331.0) == ()


@given(
    times=st.lists(st.floats(0, 2000, allow_nan=False), max_size=70),
    now=st.floats(-100, 2500, allow_nan=False),
    window=st.sampled_from([core.FLOW_WINDOW, 1.0, 60.0]),
)
def test_the_rate_of_the_flow_in_the_window_is_the_rate_of_the_whole_history(times, now, window):
    """What the stores return instead of their history measures exactly the same rate."""
    samples = [(t, i * 3) for i, t in enumerate(sorted(times))]
    picked = flow_in_window(samples, now, window)
    assert len(picked) <= 2
    admitted = 3 * len(samples)
    assert measured_rate(picked, now, admitted, window) == measured_rate(
        samples, now, admitted, window
    )


def test_the_mean_hold_is_the_ended_passes_unless_the_ones_still_held_say_longer():
    # Two passes ended after 10 s and 30 s: 20 s on average.
    assert mean_hold(2, 10 + 30, 10 + 30 + 5 + 5, active=2) == 20  # two more only 5 s in
    # Two more are 60 s into their hold: every pass so far, (10 + 30 + 60 + 60) / 4 = 40 s.
    assert mean_hold(2, 10 + 30, 10 + 30 + 60 + 60, active=2) == 40
    assert mean_hold(0, 0, 500, active=3) is None  # nothing ended yet: unknown, not the window


def test_the_line_rate_is_the_slower_of_rate_and_capacity_over_the_mean_hold():
    assert line_rate(OutflowPolicy(capacity=100), hold=100.0) == 1.0  # 100 slots of 100 s
    assert line_rate(OutflowPolicy(rate_per_minute=30)) == 0.5
    assert line_rate(OutflowPolicy(capacity=100, rate_per_minute=30), hold=100.0) == 0.5
    assert line_rate(OutflowPolicy(capacity=100)) is None  # no pass ended yet: unknown
    assert line_rate(OutflowPolicy(capacity=100, rate_per_minute=30)) is None
    assert line_rate(OutflowPolicy()) is None
    # What was measured this busy spell stands in only where the policy cannot say.
    assert line_rate(OutflowPolicy(capacity=100), hold=100.0, measured=3.0) == 1.0
    assert line_rate(OutflowPolicy(capacity=100), measured=3.0) == 3.0
    assert line_rate(OutflowPolicy(), measured=3.0) == 3.0


def test_eta_divides_position_by_rate():
    assert estimate_eta(10, 2.0, None) == 5
    assert estimate_eta(10, None, 0.5) == 20
    assert estimate_eta(0, None, None) == 0
    assert estimate_eta(5, None, None) is None


def test_queue_transitions():
    check_queue_transition(QueueState.SCHEDULED, QueueState.OPEN)
    check_queue_transition(QueueState.OPEN, QueueState.PAUSED)
    check_queue_transition(QueueState.PAUSED, QueueState.OPEN)
    with pytest.raises(InvalidTransition) as err:
        check_queue_transition(QueueState.CLOSED, QueueState.OPEN)
    assert err.value.code == "invalid_transition"


def test_claims_round_trip_and_refuse_a_mismatched_jti():
    claims = PassClaims("iss", "42", 7, "user:1", 100, 200)
    payload = claims.to_payload()
    assert payload["aud"] == "ticketqueue:queue:42" and payload["jti"] == "42.7"
    assert PassClaims.from_payload(payload) == claims
    with pytest.raises(PassInvalid):
        PassClaims.from_payload({**payload, "jti": "42.8"})
    with pytest.raises(PassInvalid):
        PassClaims.from_payload({k: v for k, v in payload.items() if k != "idn"})


def test_shuffle_deals_the_same_orders_the_same_way_per_seed():
    ranked = [(seq, float(seq)) for seq in range(1, 101)]
    first = shuffle_order(ranked, 7)
    assert first == shuffle_order(ranked, 7)
    assert first != shuffle_order(ranked, 8)
    assert sorted(first.values()) == [float(s) for s in range(1, 101)]
    assert set(first) == set(range(1, 101))


def test_error_codes_are_unique_and_stable():
    errors = [
        getattr(core, name)
        for name in core.__all__
        if name.endswith(
            (
                "Error",
                "NotFound",
                "Closed",
                "Full",
                "Unavailable",
                "Transition",
                "Invalid",
                "Missing",
                "Expired",
                "Queue",
                "Identity",
                "Active",
                "Input",
            )
        )
    ]
    codes = [e.code for e in errors if isinstance(e, type) and issubclass(e, core.TicketQueueError)]
    assert len(codes) == len(set(codes))
    assert {
        "queue_closed",
        "queue_full",
        "queue_not_found",
        "pass_expired",
        "pass_wrong_queue",
        "pass_invalid",
        "entry_not_found",
    } <= set(codes)
