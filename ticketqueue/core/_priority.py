"""Priority groups on one line: a group's entries stand in a band ahead of the public's.

An entry's ``order`` (its place in the line) is its ``seq`` minus ``priority * PRIORITY_BAND``:
the public (priority 0) stand at their seq, a group of priority 1 in the band below, and so on.
So one sorted line still decides everything: a higher group's entries are admitted first,
each band is first come, first served by seq, positions count everyone ahead of any band, and
ordering the admission log by number gives increasing orders. ``seq`` stays below the band
(10**13 joins) and orders stay exact in a float (priorities up to ``MAX_PRIORITY``).
"""

from __future__ import annotations

import math

__all__ = ["MAX_PRIORITY", "PRIORITY_BAND", "priority_of", "priority_order"]

PRIORITY_BAND = 10**13
MAX_PRIORITY = 99


def priority_order(seq: int, priority: int = 0) -> float:
    """The order of a new entry: its seq, in its priority's band."""
    return float(seq - priority * PRIORITY_BAND)


def priority_of(order: float) -> int:
    """The priority whose band ``order`` stands in."""
    return max(0, -math.floor(order / PRIORITY_BAND))
