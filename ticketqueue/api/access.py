"""``GET access/``: is this pass good now? For backends that are not this Django site.

A ticketing backend written in anything presents the buyer's pass as a bearer token on each
protected request (caching the answer for the seconds ``Cache-Control`` allows) and gets:

- 200 and the pass's claims: the pass is valid and active;
- 410 ``pass_expired`` / ``pass_not_active``: it ended (expired, released or revoked);
- 401 ``pass_missing`` / ``pass_invalid`` / ``pass_wrong_queue`` / ...: it is not a pass of
  this site (or of the queue pinned with ``?queue=<slug>``);
- 503 when the store cannot say (``STORE_FAILURE = 'closed'``).

It is the purchase gate's check without the identity part (the backend compares the claims'
``identity`` with its own user): no SQL (a pinned slug is resolved once per process every few
minutes) and at most one store round trip (``revocation``: mostly none). A plain Django view:
DRF's authentication would read a session, which is SQL.
"""

from __future__ import annotations

import math

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from .. import gate, passes, revocation
from ..conf import queue_settings
from ..core import (
    PassError,
    PassExpired,
    PassMissing,
    PassNotActive,
    QueueNotFound,
    QueueUnavailable,
    TicketQueueError,
)
from ..errors import error_body

__all__ = ["access"]

_SCHEMES = ("bearer ", "queuepass ")


def _token(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    for scheme in _SCHEMES:
        if header[: len(scheme)].lower() == scheme:
            return header[len(scheme) :].strip()
    return ""


def _refusal(exc: TicketQueueError, status: int, cache: int) -> JsonResponse:
    response = JsonResponse(error_body(exc), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if status == 503:
        response["Retry-After"] = str(int(queue_settings.GATE_RETRY_AFTER))
    response["Cache-Control"] = f"private, max-age={cache}" if cache else "no-store"
    return response


@require_safe
def access(request: HttpRequest) -> JsonResponse:
    cache = max(0, int(queue_settings.ACCESS_CACHE_SECONDS))
    now = passes.timer()
    token = _token(request)
    if not token:
        return _refusal(PassMissing(), 401, 0)
    try:
        slug = request.GET.get("queue")
        queue_id = gate.queue_id_for(slug) if slug else None
        claims = passes.verify(token, queue_id=queue_id, now=now)
        revocation.check_active(claims, now)
    except QueueNotFound as exc:
        return _refusal(exc, 404, 0)
    except (PassExpired, PassNotActive) as exc:
        return _refusal(exc, 410, cache)  # ended for good: worth caching
    except PassError as exc:
        return _refusal(exc, 401, 0)
    except QueueUnavailable as exc:
        return _refusal(exc, 503, 0)
    body = {
        "active": True,
        "queue": claims.queue_id,
        "seq": claims.seq,
        "identity": claims.identity,
        "jti": claims.jti,
        "issued_at": claims.issued_at,
        "expires_at": claims.expires_at,
        "device": claims.device,
    }
    response = JsonResponse(body)
    # Never cached past the pass's own end.
    left = max(0, math.floor(claims.expires_at - now))
    response["Cache-Control"] = f"private, max-age={min(cache, left)}"
    return response
