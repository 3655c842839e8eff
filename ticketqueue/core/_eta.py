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
    samples: Sequence[tuple[float, int]], now: float, window: float = FLOW_WINDOW
) -> float | None:
    """Admissions per second over the recent ``window``, from (time, total admitted) samples.

    None when there is too little history to say (fewer than two samples in the window).
    """
    recent = flow_in_window(samples, now, window)
    if len(recent) < 2:
        return None
    (t0, n0), (t1, n1) = recent
    # Count the time since the last sample too: a line that stopped moving is slow, not fast.
    elapsed = max(now, t1) - t0
    if elapsed <= 0:
        return None
    return (n1 - n0) / elapsed


def mean_hold(passes_ended: int, hold_exposure: float) -> float | None:
    """Seconds a pass is held on average, or None before any pass ended.

    ``hold_exposure`` is the time every pass so far has been held: the ended ones whole, the
    active ones up to now. Dividing it by the passes that ended is the estimate that counts
    the slow holders still shopping (the ended ones alone are the fast ones at first). It is
    indifferent to idle spells, unlike admissions counted over time.
    """
    if passes_ended <= 0 or hold_exposure <= 0:
        return None
    return hold_exposure / passes_ended


def line_rate(
    policy: OutflowPolicy,
    passes_ended: int = 0,
    hold_exposure: float = 0.0,
    measured: float | None = None,
) -> float | None:
    """Admissions per second while people wait, or None when no honest figure exists yet.

    The admissions ``measured`` over the last minutes once two samples exist; before that the
    slower of the rate limit and capacity over the mean hold (while anyone waits, every freed
    slot is refilled). With a capacity and no pass ended yet, the pace is unknown: the
    purchase window as the hold (the old guess) made the first estimate 30-500 times too long.
    """
    if measured:
        return measured
    rates = []
    if policy.rate_per_minute:
        rates.append(policy.rate_per_minute / 60.0)
    if policy.capacity:
        hold = mean_hold(passes_ended, hold_exposure)
        if hold is None:
            return None
        rates.append(policy.capacity / hold)
    return min(rates) if rates else None


def estimate_eta(position: int, measured: float | None, expected: float | None) -> int | None:
    """Seconds until ``position`` is admitted, or None when no honest estimate exists."""
    if position <= 0:
        return 0
    rate = measured if measured else expected
    if not rate or rate <= 0 or math.isinf(rate):
        return None if not rate else 0
    return math.ceil(position / rate)
