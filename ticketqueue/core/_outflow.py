"""Outflow policy: how many waiting entries may be admitted now.

Capacity bounds the passes active at once; rate bounds admissions per minute through a token
bucket, so a tick that comes late or twice cannot admit more than the rate allows. Both are
optional and combine (the smaller allowance wins). The Redis Lua scripts mirror this math.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BURST_SECONDS", "Bucket", "OutflowPolicy"]

#: The token bucket holds this many seconds of rate, so a late tick catches up a little,
#: never by more.
BURST_SECONDS = 2.0


@dataclass(frozen=True)
class Bucket:
    """Token bucket state: tokens available at time ``at`` (seconds)."""

    tokens: float
    at: float


@dataclass(frozen=True)
class OutflowPolicy:
    capacity: int | None = None
    rate_per_minute: int | None = None

    @property
    def bucket_size(self) -> float:
        if self.rate_per_minute is None:
            return math.inf
        return max(1.0, self.rate_per_minute / 60.0 * BURST_SECONDS)

    def full_bucket(self, now: float) -> Bucket:
        return Bucket(tokens=self.bucket_size, at=now)

    def refill(self, bucket: Bucket, now: float) -> Bucket:
        """The bucket at ``now``; a clock going backwards adds nothing."""
        if self.rate_per_minute is None:
            return Bucket(tokens=math.inf, at=now)
        elapsed = max(0.0, now - bucket.at)
        tokens = min(self.bucket_size, bucket.tokens + elapsed * self.rate_per_minute / 60.0)
        return Bucket(tokens=tokens, at=max(now, bucket.at))

    def room(self, active: int) -> float:
        """How many more passes capacity allows."""
        if self.capacity is None:
            return math.inf
        return float(max(0, self.capacity - active))

    def allowance(
        self, *, active: int, waiting: int, tokens: float, limit: int | None = None
    ) -> int:
        """How many of ``waiting`` to admit now, given ``active`` passes and bucket ``tokens``."""
        n = min(
            float(waiting), self.room(active), tokens if math.isinf(tokens) else math.floor(tokens)
        )
        if limit is not None:
            n = min(n, float(limit))
        return max(0, int(n))
