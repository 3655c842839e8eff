"""Wait-time estimate from the outflow actually measured, with the policy as the first guess."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._outflow import OutflowPolicy

__all__ = [
    "FLOW_SAMPLE_EVERY",
    "FLOW_WINDOW",
    "estimate_eta",
    "expected_rate",
    "flow_in_window",
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


def expected_rate(policy: OutflowPolicy, purchase_window: float) -> float | None:
    """The rate the policy promises before anything is measured (admissions per second)."""
    rates = []
    if policy.rate_per_minute:
        rates.append(policy.rate_per_minute / 60.0)
    if policy.capacity and purchase_window > 0:
        # At worst every pass is held the whole window before its slot frees.
        rates.append(policy.capacity / purchase_window)
    return min(rates) if rates else None


def estimate_eta(position: int, measured: float | None, expected: float | None) -> int | None:
    """Seconds until ``position`` is admitted, or None when no honest estimate exists."""
    if position <= 0:
        return 0
    rate = measured if measured else expected
    if not rate or rate <= 0 or math.isinf(rate):
        return None if not rate else 0
    return math.ceil(position / rate)
