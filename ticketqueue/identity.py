"""Who holds a place: the logged-in user, else a signed anonymous visitor id (a cookie).

The same identity string is used by the WebSocket consumer, the REST API and the pass gate.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core import signing

__all__ = [
    "VISITOR_COOKIE",
    "identity_for",
    "new_visitor_cookie",
    "user_identity",
    "visitor_id_from_cookie",
]

VISITOR_COOKIE = "tq_visitor"
_signer = signing.Signer(salt="ticketqueue.visitor")


def user_identity(user: Any) -> str | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return None


def visitor_id_from_cookie(value: str | None) -> str | None:
    """The visitor id inside a signed cookie value, or None if missing or tampered with."""
    if not value:
        return None
    try:
        visitor = _signer.unsign(value)
    except signing.BadSignature:
        return None
    return visitor if len(visitor) == 32 and visitor.isalnum() else None


def new_visitor_cookie() -> tuple[str, str]:
    """A fresh (visitor id, signed cookie value)."""
    visitor = uuid.uuid4().hex
    return visitor, _signer.sign(visitor)


def identity_for(user: Any, cookies: dict[str, str]) -> str | None:
    """The identity of a request or a WebSocket scope: the user, else the visitor cookie."""
    return user_identity(user) or (
        f"anon:{visitor}"
        if (visitor := visitor_id_from_cookie(cookies.get(VISITOR_COOKIE)))
        else None
    )
