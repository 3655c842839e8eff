"""Who holds a place: the logged-in user, else a signed anonymous visitor id (a cookie).

The same identity string is used by the WebSocket consumer, the REST API and the pass gate.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any

from django.core import signing

from .conf import on_change

__all__ = [
    "DEVICE_COOKIE",
    "VISITOR_COOKIE",
    "device_digest",
    "device_of",
    "device_or_new",
    "ensure_device",
    "new_device_id",
    "set_device_cookie",
    "client_address",
    "ensure_visitor",
    "identity_for",
    "new_visitor_cookie",
    "set_visitor_cookie",
    "user_identity",
    "visitor_id_from_cookie",
]

VISITOR_COOKIE = "tq_visitor"
_signer: signing.Signer | None = None  # made on first use, from the SECRET_KEY of then


def _visitor_signer() -> signing.Signer:
    global _signer
    if _signer is None:
        _signer = signing.Signer(salt="ticketqueue.visitor")
    return _signer


@on_change("SECRET_KEY", "SECRET_KEY_FALLBACKS")
def _forget_signer() -> None:
    global _signer
    _signer = None


#: A browser's device id (one per browser: its tabs are one device), for queues with one
#: device per person. Apps send theirs as ``X-Queue-Device``. Not signed: it only names the
#: client's own device, and only its digest is kept (store, passes).
DEVICE_COOKIE = "tq_device"
DEVICE_HEADER = "HTTP_X_QUEUE_DEVICE"
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def device_digest(device_id: str) -> str:
    """What the store and a pass's ``dev`` claim keep of a device id (never the id itself)."""
    digest = hashlib.sha256(b"ticketqueue.device|" + device_id.encode()).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode()


def device_of(meta: Mapping[str, Any], cookies: Mapping[str, str]) -> str | None:
    """The digest of the device id a request or socket brings (header, else cookie), or None
    when it brings none or a malformed one."""
    raw = meta.get(DEVICE_HEADER) or cookies.get(DEVICE_COOKIE)
    return device_digest(raw) if raw and _DEVICE_ID.fullmatch(raw) else None


def new_device_id() -> str:
    return secrets.token_urlsafe(16)


def set_device_cookie(response: Any, request: Any, device_id: str) -> None:
    """Give the client its device id: a long-lived HttpOnly cookie, and ``X-Queue-Device`` for
    clients that keep no cookies."""
    _set_long_cookie(response, request, DEVICE_COOKIE, device_id)
    response["X-Queue-Device"] = device_id


def device_or_new(request: Any) -> tuple[str, str | None]:
    """(the digest of the request's device id, None), or for a client without one (the digest
    of a new id, the id): the caller gives it with ``set_device_cookie``."""
    found = device_of(request.META, request.COOKIES)
    if found is not None:
        return found, None
    device_id = new_device_id()
    return device_digest(device_id), device_id


def ensure_device(request: Any, response: Any) -> str:
    """The digest of the request's device id; a client without one gets one on ``response``."""
    device, new = device_or_new(request)
    if new is not None:
        set_device_cookie(response, request, new)
    return device


def user_identity(user: Any) -> str | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return None


def visitor_id_from_cookie(value: str | None) -> str | None:
    """The visitor id inside a signed cookie value, or None if missing or tampered with."""
    if not value:
        return None
    try:
        visitor = _visitor_signer().unsign(value)
    except signing.BadSignature:
        return None
    return visitor if len(visitor) == 32 and visitor.isalnum() else None


def new_visitor_cookie() -> tuple[str, str]:
    """A fresh (visitor id, signed cookie value)."""
    visitor = secrets.token_hex(16)  # 32 hex digits, 128 random bits
    return visitor, _visitor_signer().sign(visitor)


def identity_for(user: Any, cookies: dict[str, str]) -> str | None:
    """The identity of a request or a WebSocket scope: the user, else the visitor cookie."""
    return user_identity(user) or (
        f"anon:{visitor}"
        if (visitor := visitor_id_from_cookie(cookies.get(VISITOR_COOKIE)))
        else None
    )


def set_visitor_cookie(response: Any, request: Any, signed: str) -> None:
    """Give the browser its signed visitor id: HttpOnly, for the visitor cookie's lifetime."""
    _set_long_cookie(response, request, VISITOR_COOKIE, signed)


def _set_long_cookie(response: Any, request: Any, name: str, value: str) -> None:
    """HttpOnly, SameSite=Lax, for the visitor cookie's lifetime (``VISITOR_COOKIE_AGE``)."""
    from .conf import queue_settings

    response.set_cookie(
        name,
        value,
        max_age=int(queue_settings.VISITOR_COOKIE_AGE),
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )


def ensure_visitor(request: Any, response: Any, queue: Any = None) -> str | None:
    """Give an anonymous visitor without a visitor id a new one on ``response``.

    For a site's own page that talks to the queue's API or socket itself: the socket cannot set
    cookies, and the place in line belongs to this identity. Returns the request's identity
    (the new visitor's, if one was made); a logged-in user gets no cookie. With ``queue`` (a
    Queue), new ids count against its ``visitor_ip`` limit: past it, none is given (None).
    Every browser also gets its device id (``ensure_device``), logged in or not.
    """
    ensure_device(request, response)
    identity = identity_for(getattr(request, "user", None), request.COOKIES)
    if identity is not None:
        return identity
    if queue is not None:
        from .limits import wait_for

        if wait_for(queue.store_id, [("visitor_ip", client_address(request.META))]) is not None:
            return None
    visitor, signed = new_visitor_cookie()
    set_visitor_cookie(response, request, signed)
    return f"anon:{visitor}"


def client_address(meta: Mapping[str, Any]) -> str:
    """The client's address, for per-address limits: ``REMOTE_ADDR``, or behind
    ``TRUSTED_PROXIES`` proxies the address the outermost of them saw (that many entries from
    the right of X-Forwarded-For). Entries further left are whatever the client wrote and are
    never trusted: with ``TRUSTED_PROXIES = 0`` (the default) the header is ignored."""
    from .conf import queue_settings

    remote = str(meta.get("REMOTE_ADDR") or "")
    proxies = int(queue_settings.TRUSTED_PROXIES)
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if proxies <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in str(forwarded).split(",")]
    if len(hops) < proxies:  # shorter than our own proxies write it: not theirs
        return remote
    return hops[-proxies] or remote
