"""Request limits: a sliding-window counter per name (the REST throttles).

Each name keeps two counts, its current fixed window's and the previous one's; the requests of
the last ``period`` seconds are estimated as the previous count weighted by how much of the
previous window still overlaps the sliding one, plus the current count. O(1) state per name,
no list of timestamps. The Redis Lua script (``store/lua/hit_limits.lua``) mirrors this math.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LIMIT_SLACK", "LimitWindow", "limit_check"]

#: Estimates within this much of the limit count as at it: the weighted previous count is a
#: float (3 * (1 - 1/3) is 2.0000000000000004), and a hit exactly on time must pass.
LIMIT_SLACK = 1e-9


@dataclass(frozen=True)
class LimitWindow:
    """One name's counter: ``current`` hits in fixed window number ``window`` (``now //
    period``) and ``previous`` hits in the window before it."""

    window: int
    current: int = 0
    previous: int = 0

    def at(self, window: int) -> LimitWindow:
        """The counter as seen from fixed window number ``window`` (at or after its own)."""
        if window == self.window:
            return self
        if window == self.window + 1:
            return LimitWindow(window, 0, self.current)
        return LimitWindow(window)


def limit_check(
    state: LimitWindow | None, limit: int, period: float, now: float
) -> tuple[LimitWindow, float | None]:
    """One hit on a name allowed ``limit`` hits per ``period`` seconds.

    Returns the counter as it would be after counting the hit, and None when the hit is
    allowed, else the seconds until it would be (the counter is then unchanged: the caller
    stores nothing).
    """
    window = math.floor(now / period)
    fraction = (now - window * period) / period
    if state is not None and state.window > window:  # another clock ran ahead: its window
        window, fraction = state.window, 0.0
    w = LimitWindow(window) if state is None else state.at(window)
    if limit <= 0:
        return w, float(period)
    if w.previous * (1.0 - fraction) + w.current + 1 <= limit + LIMIT_SLACK:
        return LimitWindow(window, w.current + 1, w.previous), None
    if w.current + 1 <= limit:
        # Room once enough of the previous window has slid out of the sliding one.
        needed = 1.0 - (limit - 1 - w.current) / w.previous
        return w, max(0.0, (needed - fraction) * period)
    # Only in the next window, once enough of this one has slid out.
    needed = max(0.0, 1.0 - (limit - 1) / w.current)
    return w, (1.0 - fraction + needed) * period
