"""Wait-time estimates: how fast the line moves, from the policy and the passes measured."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._outflow import OutflowPolicy

__all__ = [
    "FLOW_SAMPLE_EVERY",
    "FLOW_WINDOW",
    "estimate_eta",
    "flow_in_window",
    "line_rate",
    "mean_hold",
    "measured_rate",
]

#: The store records (time, admitted so far) at most this often ...
FLOW_SAMPLE_EVERY = 5.0
#: ... and the rate is measured over at most this many recent seconds.
FLOW_WINDOW = 300.0


def flow_in_window(
    samples: Sequence[tuple[float, int]], now: float, window: float = FLOW_WINDOW
) -> tuple[tuple[float, int], ...]:
    """The samples ``measured_rate`` at ``now`` uses: the first and the last of those inside
    the ``window`` (one, or none, when fewer are inside).

    The stores return only these with their counts, so ``measured_rate`` of them equals
    ``measured_rate`` of the whole history at the same ``now`` (RedisStore's counts script
    mirrors this selection).
    """
    recent = [s for s in samples if now - s[0] <= window]
    if len(recent) < 2:
        return tuple(recent)
    return (recent[0], recent[-1])


def measured_rate(
    samples: Sequence[tuple[float, int]],
    now: float,
    admitted: int,
    window: float = FLOW_WINDOW,
) -> float | None:
    """Admissions per second since the first (time, total admitted) sample of the recent
    ``window``, up to ``now`` with ``admitted`` so far.

    The stores sample only while people wait and forget the samples when the line empties, so
    this is the pace of the current busy spell: an idle spell before it (admissions bounded by
    arrivals, not by the outflow) does not slow it down. None when there is too little history
    to say (no sample, or less than FLOW_SAMPLE_EVERY seconds of it). A line that stopped
    moving is slow, not fast: the time since its last admission counts.
    """
    recent = flow_in_window(samples, now, window)
    if not recent:
        return None
    t0, n0 = recent[0]
    elapsed = now - t0
    if elapsed < FLOW_SAMPLE_EVERY:
        return None
    return max(0, admitted - n0) / elapsed


def mean_hold(
    passes_ended: int, ended_hold: float, hold_exposure: float = 0.0, active: int = 0
) -> float | None:
    """Seconds a pass is held on average, or None before any pass ended.

    ``ended_hold`` is the seconds the ended passes were held, ``hold_exposure`` the seconds
    every pass so far has been held (the ``active`` ones up to now). The estimate is the ended
    passes' mean, or the mean over every pass so far where the ones still held have been held
    longer (slow holders still shopping): both understate at first, and the larger is the
    nearer. Exposure per *ended* pass instead charges all the active passes' time to the few
    that ended: 2-37 times too long in the first seconds of a sale (docs/benchmarks.md, "The
    first wait estimate"). Indifferent to idle spells, unlike admissions counted over time.
    """
    if passes_ended <= 0 or ended_hold <= 0:
        return None
    return max(ended_hold / passes_ended, hold_exposure / (passes_ended + active))


def line_rate(
    policy: OutflowPolicy,
    hold: float | None = None,
    measured: float | None = None,
) -> float | None:
    """Admissions per second while people wait, or None when no honest figure exists yet.

    While anyone waits every freed slot is refilled, so the line moves at the slower of the
    rate limit and capacity over the mean ``hold`` (``mean_hold``). The admissions
    ``measured`` over the current busy spell stand in only where the policy cannot say (a
    capacity before any pass ended; no limit at all): on a 2-core sale they lagged the pace the
    line then kept by 2x, as the joins' burst slowed purchases down. With a capacity and no
    pass ended yet, the pace is unknown: the purchase window as the hold (the first guess)
    made the first estimate 30-500 times too long.
    """
    rates = []
    if policy.rate_per_minute:
        rates.append(policy.rate_per_minute / 60.0)
    if policy.capacity:
        if hold is None:
            return measured or None
        rates.append(policy.capacity / hold)
    return min(rates) if rates else (measured or None)


def estimate_eta(position: int, measured: float | None, expected: float | None) -> int | None:
    """Seconds until ``position`` is admitted, or None when no honest estimate exists."""
    if position <= 0:
        return 0
    rate = measured if measured else expected
    if not rate or rate <= 0 or math.isinf(rate):
        return None if not rate else 0
    return math.ceil(position / rate)
