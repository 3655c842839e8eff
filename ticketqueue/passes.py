"""Signing and verifying queue passes (JWTs). The algorithm list is pinned to one entry.

HS256 uses a key derived from SECRET_KEY for this purpose only (never the bare SECRET_KEY).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
from django.conf import settings
from django.utils.crypto import salted_hmac

from .conf import queue_settings
from .core import (
    REQUIRED_CLAIMS,
    PassClaims,
    PassExpired,
    PassInvalid,
    PassWrongQueue,
    pass_audience,
)

__all__ = ["sign", "verify"]

#: The clock passes are checked against; tests swap it.
timer: Callable[[], float] = time.time


def _hs256_key() -> bytes:
    if queue_settings.PASS_SECRET:
        return str(queue_settings.PASS_SECRET).encode()
    return salted_hmac("ticketqueue.passes", "pass-signing-key", secret=settings.SECRET_KEY, algorithm="sha256"
    ).digest()


def sign(claims: PassClaims) -> str:
    return jwt.encode(claims.to_payload(), _hs256_key(), algorithm="HS256")


def verify(token: str, *, queue_id: str | None = None, now: float | None = None) -> PassClaims:
    """Check signature, claims and times; return the claims or raise a PassError.

    ``queue_id`` pins the audience: a pass for another queue is refused.
    """
    now = timer() if now is None else now
    try:
        payload = jwt.decode(
            token,
            _hs256_key(),
            algorithms=["HS256"],
            issuer=queue_settings.PASS_ISSUER,
            # The audience is checked below, so a wrong queue gets its own code.
            options={"require": list(REQUIRED_CLAIMS), "verify_aud": False, "verify_exp": False,
                     "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError as exc:
        raise PassInvalid() from exc
    claims = PassClaims.from_payload(payload)
    if queue_id is not None and payload["aud"] != pass_audience(queue_id):
        raise PassWrongQueue()
    if claims.issued_at > now + 5:  # a little skew between hosts, no more
        raise PassInvalid("The queue pass is not valid yet.")
    if claims.expires_at <= now:
        raise PassExpired()
    return claims
