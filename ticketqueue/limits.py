"""Per-address and per-identity limits on every way into a queue, counted in the store.

Each limit is a scope with a rate in ``TICKETQUEUE['THROTTLE_RATES']`` ('20/min'; None turns it
off), counted per queue by ``QueueStore.hit_limits`` (a sliding window, all or nothing, beside
the queue: one count for every process and every path):

=================================  ==============================================================
``join_ip``, ``join_identity``     a place in line asked for, over REST or a socket
``status_ip``, ``status_identity`` a REST status read
``visitor_ip``                     a new visitor id given out (the waiting page; REST without one)
``connect_ip``, ``connect_identity`` a socket opened
``operator_ip``, ``operator_client`` an operator API call (per address; per key or staff member)
``operator_token_ip``              a staff token asked for (a password tried)
``device_ip``, ``device_identity`` a push device registered or dropped
=================================  ==============================================================

The address is ``identity.client_address`` (``TRUSTED_PROXIES``). An unreachable store lets the
request through (logged at most once a minute): the operation itself then answers
``store_unreachable``. docs/settings.md says how the defaults were chosen.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .conf import DEFAULTS, queue_settings
from .core import StoreUnreachable, Throttled
from .identity import client_address
from .store import LimitHit, LimitResult, get_store

__all__ = [
    "address_of_scope",
    "check",
    "limit_hits",
    "parse_rate",
    "wait_for",
    "wait_of",
]

log = logging.getLogger(__name__)

#: Seconds between two "store unreachable" log records (the limits fail open).
FAIL_OPEN_LOG_EVERY = 60.0
_last_logged = -math.inf
_log_lock = threading.Lock()

#: Longer client names (an X-Forwarded-For of any length, a long identity) are hashed.
MAX_NAME = 200

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

#: Seconds on the store's clock; tests swap it.
timer = time.time


def parse_rate(rate: str) -> tuple[int, int]:
    """'20/min' -> (20, 60), as DRF reads a rate."""
    num, period = rate.split("/")
    return int(num), _PERIODS[period[0]]


def rate_of(scope: str) -> tuple[int, int] | None:
    rates = {**DEFAULTS["THROTTLE_RATES"], **(queue_settings.THROTTLE_RATES or {})}
    rate = rates.get(scope)
    return None if rate is None else parse_rate(rate)


def _name(scope: str, who: str) -> str:
    if len(who) > MAX_NAME:
        who = "sha256:" + hashlib.sha256(who.encode()).hexdigest()
    return f"{scope}:{who}"


def _fail_open(exc: Exception) -> None:
    global _last_logged
    now = time.monotonic()
    with _log_lock:
        if now - _last_logged < FAIL_OPEN_LOG_EVERY:
            return
        _last_logged = now
    log.warning("limits skipped: the store is unreachable (%s)", exc.__cause__ or exc)


def wait_for(queue_id: str, hits: Sequence[tuple[str, str | None]]) -> float | None:
    """Count one request against each ``(scope, who)`` (a None ``who`` or a scope turned off is
    skipped): None when every limit had room, else the seconds until they all would."""
    return wait_for_many(queue_id, [hits])[0]


def wait_for_many(
    queue_id: str, requests: Sequence[Sequence[tuple[str, str | None]]]
) -> list[float | None]:
    """``wait_for`` for each request, in one store round trip (a socket process's connects
    of the last moment)."""
    counted = [limit_hits(hits) for hits in requests]
    if not any(counted):
        return [None] * len(requests)
    try:
        results = get_store().hit_limits_many(queue_id, counted, timer())
    except StoreUnreachable as exc:
        _fail_open(exc)
        return [None] * len(requests)
    return [wait_of(result) for result in results]


def limit_hits(hits: Sequence[tuple[str, str | None]]) -> list[LimitHit]:
    """What the store counts for these ``(scope, who)``: the scopes turned on, with a who."""
    counted = []
    for scope, who in hits:
        rate = rate_of(scope)
        if rate is not None and who:
            counted.append(LimitHit(_name(scope, who), *rate))
    return counted


def wait_of(results: Sequence[LimitResult]) -> float | None:
    """None when every limit had room, else the whole seconds (at least 1) until all would."""
    refused = [r.wait for r in results if not r.allowed]
    return max(1, math.ceil(max(refused))) if refused else None


def check(queue_id: str, hits: Sequence[tuple[str, str | None]]) -> None:
    """``wait_for``, raising ``Throttled`` (429, its ``wait``) when a limit has no room."""
    wait = wait_for(queue_id, hits)
    if wait is not None:
        raise Throttled(wait=wait)


def address_of_scope(scope: Mapping[str, Any]) -> str:
    """The client address of an ASGI scope, read as for a request (``TRUSTED_PROXIES``)."""
    meta = {"REMOTE_ADDR": (scope.get("client") or ("",))[0] or ""}
    for name, value in scope.get("headers") or ():
        if name == b"x-forwarded-for":
            meta["HTTP_X_FORWARDED_FOR"] = value.decode("latin1")
    return client_address(meta)
