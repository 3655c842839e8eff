"""Throttles on join and status, per client IP and per identity (DRF throttles on the cache).

Rates come from TICKETQUEUE['THROTTLE_RATES']; a rate of None turns that throttle off.
"""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import SimpleRateThrottle

from .. import gate
from ..conf import DEFAULTS, queue_settings

__all__ = [
    "JoinIdentityThrottle",
    "JoinIPThrottle",
    "StatusIdentityThrottle",
    "StatusIPThrottle",
]


class _QueueThrottle(SimpleRateThrottle):
    cache_format = "ticketqueue_throttle_%(scope)s_%(ident)s"

    def get_rate(self) -> str | None:
        rates = {**DEFAULTS["THROTTLE_RATES"], **(queue_settings.THROTTLE_RATES or {})}
        return rates.get(self.scope)


class _IPThrottle(_QueueThrottle):
    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class _IdentityThrottle(_QueueThrottle):
    def get_cache_key(self, request: Any, view: Any) -> str | None:
        identities = gate.request_identities(request)
        if not identities:
            return None  # a first visit: the IP throttle is the limit
        return self.cache_format % {"scope": self.scope, "ident": identities[0]}


class JoinIPThrottle(_IPThrottle):
    scope = "join_ip"


class JoinIdentityThrottle(_IdentityThrottle):
    scope = "join_identity"


class StatusIPThrottle(_IPThrottle):
    scope = "status_ip"


class StatusIdentityThrottle(_IdentityThrottle):
    scope = "status_identity"
