"""DRF throttles on status and push devices: the per-address and per-identity limits of
``ticketqueue.limits`` (counted in the store, shared with the socket and the waiting page), both
scopes of an endpoint in one store call. A request without an identity is a new visitor that
this request would mint: it counts against ``visitor_ip`` too. (The join counts the same limits
inside its own store step: ``services.join``.)
"""

from __future__ import annotations

import math
from typing import Any

from rest_framework.throttling import BaseThrottle

from .. import gate, limits
from ..core import QueueNotFound
from ..identity import client_address
from .queue_rows import queue_row

__all__ = [
    "DeviceThrottle",
    "QueueThrottle",
    "StatusThrottle",
]


class QueueThrottle(BaseThrottle):
    """Both scopes of one endpoint (``ip_scope``, ``identity_scope``) in one store call.

    The address is ``identity.client_address`` (``TRUSTED_PROXIES``), not DRF's ``get_ident``,
    which believes any X-Forwarded-For unless ``NUM_PROXIES`` is set.

    The request's queue comes from the view's ``queue`` URL kwarg (the API's cached row); an
    unknown slug is not throttled, the view answers 404. An unreachable store lets the request
    through: the endpoint itself then answers ``store_unreachable``.
    """

    ip_scope = ""
    identity_scope = ""
    #: A first visit gets a visitor id from this endpoint (join, status): counted per address.
    mints = True

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        address = client_address(request.META)
        identities = gate.request_identities(request)
        hits = [(self.ip_scope, address)]
        if identities:
            hits.append((self.identity_scope, identities[0]))
        elif self.mints:
            hits.append(("visitor_ip", address))
        try:
            row = queue_row(view.kwargs["queue"])
        except (KeyError, QueueNotFound):
            return True  # not a queue's endpoint, or an unknown queue: the view answers
        wait = limits.wait_for(row.store_id, hits)
        if wait is None:
            return True
        self._wait = max(1, math.ceil(wait))
        return False

    def wait(self) -> float | None:
        return self._wait


class StatusThrottle(QueueThrottle):
    ip_scope = "status_ip"
    identity_scope = "status_identity"


class DeviceThrottle(QueueThrottle):
    """Push devices registered: an app does it once per sale, a script thousands of times."""

    ip_scope = "device_ip"
    identity_scope = "device_identity"
    mints = False
