"""Short HMACs with keys derived from SECRET_KEY, one key per purpose (work tokens, invites):
a token made for one use can never pass as another, and none of them is the bare SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading

from django.conf import settings

from .conf import on_change

__all__ = ["short_mac"]

_keys: dict[str, bytes] = {}
_lock = threading.Lock()


def short_mac(purpose: str, message: str) -> str:
    """HMAC-SHA256 of ``message`` under ``purpose``'s key, 16 bytes as unpadded base64url (22
    characters, never a '.')."""
    key = _keys.get(purpose)
    if key is None:
        with _lock:
            key = _keys[purpose] = hashlib.sha256(
                f"ticketqueue.{purpose}|".encode() + settings.SECRET_KEY.encode()
            ).digest()
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@on_change("SECRET_KEY")
def _forget() -> None:
    with _lock:
        _keys.clear()
