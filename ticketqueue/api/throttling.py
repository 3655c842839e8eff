"""Throttles on join and status, per client IP and per identity, counted in the store.

One throttle per endpoint checks both scopes in ONE store call (``QueueStore.hit_limits``: a
sliding-window counter per scope, all or nothing, keyed under the queue so Redis keeps them in
its hash slot). Rates come from TICKETQUEUE['THROTTLE_RATES']; a rate of None turns that scope
off, and with both off the throttle costs nothing.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from typing import Any

from rest_framework.throttling import BaseThrottle

from .. import gate
from ..conf import DEFAULTS, queue_settings
from ..core import QueueNotFound, StoreUnreachable
from ..identity import client_address
from ..store import LimitHit, get_store
from .rows import queue_row

__all__ = [
    "JoinThrottle",
    "QueueThrottle",
    "StatusThrottle",
]

log = logging.getLogger(__name__)

#: Seconds between two "store unreachable" log records of the throttles (they fail open).
FAIL_OPEN_LOG_EVERY = 60.0
_last_logged = -math.inf
_log_lock = threading.Lock()

#: Longer client names (an X-Forwarded-For of any length, a long identity) are hashed.
MAX_NAME = 200

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'20/min' -> (20, 60), as DRF reads a rate."""
    num, period = rate.split("/")
    return int(num), _PERIODS[period[0]]


def _rate(scope: str) -> tuple[int, int] | None:
    rates = {**DEFAULTS["THROTTLE_RATES"], **(queue_settings.THROTTLE_RATES or {})}
    rate = rates.get(scope)
    return None if rate is None else parse_rate(rate)


def _name(scope: str, ident: str) -> str:
    if len(ident) > MAX_NAME:
        ident = "sha256:" + hashlib.sha256(ident.encode()).hexdigest()
    return f"{scope}:{ident}"


def _fail_open(exc: Exception) -> None:
    global _last_logged
    now = time.monotonic()
    with _log_lock:
        if now - _last_logged < FAIL_OPEN_LOG_EVERY:
            return
        _last_logged = now
    log.warning("throttles skipped: the store is unreachable (%s)", exc.__cause__ or exc)


class QueueThrottle(BaseThrottle):
    """Both scopes of one endpoint (``ip_scope``, ``identity_scope``) in one store call.

    The address is ``identity.client_address`` (``TRUSTED_PROXIES``), not DRF's ``get_ident``,
    which believes any X-Forwarded-For unless ``NUM_PROXIES`` is set.

    The request's queue comes from the view's ``queue`` URL kwarg (the API's cached row); an
    unknown slug is not throttled, the view answers 404. An unreachable store lets the request
    through (logged at most once a minute): the endpoint itself then answers
    ``store_unreachable``.
    """

    ip_scope = ""
    identity_scope = ""
    timer = staticmethod(time.time)

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        ip_rate, identity_rate = _rate(self.ip_scope), _rate(self.identity_scope)
        if ip_rate is None and identity_rate is None:
            return True
        hits = []
        if ip_rate is not None:
            address = client_address(request.META)
            hits.append(LimitHit(_name(self.ip_scope, address), *ip_rate))
        if identity_rate is not None:
            identities = gate.request_identities(request)
            if identities:  # a first visit has none: the IP scope is the limit
                hits.append(LimitHit(_name(self.identity_scope, identities[0]), *identity_rate))
        if not hits:
            return True
        try:
            row = queue_row(view.kwargs["queue"])
        except (KeyError, QueueNotFound):
            return True  # not a queue's endpoint, or an unknown queue: the view answers
        try:
            results = get_store().hit_limits(row.store_id, hits, self.timer())
        except StoreUnreachable as exc:
            _fail_open(exc)
            return True
        refused = [r.wait for r in results if not r.allowed]
        if not refused:
            return True
        self._wait = max(1, math.ceil(max(refused)))
        return False

    def wait(self) -> float | None:
        return self._wait


class JoinThrottle(QueueThrottle):
    ip_scope = "join_ip"
    identity_scope = "join_identity"


class StatusThrottle(QueueThrottle):
    ip_scope = "status_ip"
    identity_scope = "status_identity"
