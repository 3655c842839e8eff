"""Invite tokens: the way into a queue whose ``who_may_join`` is "holders of an invite".

An operator makes them (``make_invite``, ``manage.py ticketqueue_invites``) and sends them out
as links (``/queue/<slug>/wait/?invite=<token>``) or codes. A token names its queue, how many
places it may give (1: one person; N: a group, a presale list), its expiry, the priority group
it puts people in (if any: then it counts in any queue, not only one of invited people) and a
salt, signed
with an HMAC (a key derived from SECRET_KEY for this use only), so checking it needs no
database and no store; spending it is one store call (``claim_use``) that counts its uses.

Like the proofs, an invite is asked of a new place only: someone already in line keeps the
place without. A use is counted when the place is given, after every other check.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .core import InviteInvalid, InviteRequired
from .keys import short_mac
from .store import get_store

if TYPE_CHECKING:
    from .models import PriorityGroup, Queue

__all__ = ["MAX_INVITE", "Invite", "check", "make_invite", "spend"]

#: A token is at most this long.
MAX_INVITE = 128

#: What an invite lives for when its maker does not say.
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class Invite:
    uses: int
    expires: int
    group_id: int  # a PriorityGroup's pk; 0: none
    salt: str


def make_invite(
    queue: Queue,
    *,
    uses: int = 1,
    expires: float | None = None,
    group: PriorityGroup | None = None,
    now: float | None = None,
) -> str:
    """A signed invite to ``queue`` giving up to ``uses`` places until ``expires`` (epoch
    seconds; default: 30 days from now), into ``group`` if given (one of the queue's)."""
    if uses < 1:
        raise ValueError("An invite gives at least one place.")
    if group is not None and group.queue_id != queue.pk:
        raise ValueError("The group belongs to another queue.")
    now = time.time() if now is None else now
    expires = now + DEFAULT_DAYS * 86400 if expires is None else expires
    group_id = 0 if group is None else group.pk
    body = f"{uses}.{math.ceil(expires)}.{group_id}.{secrets.token_urlsafe(9)}"
    return f"{body}.{_mac(queue.store_id, body)}"


def check(queue: Queue, token: str, now: float) -> Invite:
    """The invite ``token`` is for ``queue`` and still valid (no store call), or raise
    InviteRequired (none) or InviteInvalid (forged, another queue's, expired)."""
    if not token:
        raise InviteRequired()
    parts = token.split(".")
    if len(token) > MAX_INVITE or len(parts) != 5 or not all(p.isdigit() for p in parts[:3]):
        raise InviteInvalid()
    body, mac = token.rsplit(".", 1)
    if not hmac.compare_digest(mac, _mac(queue.store_id, body)):
        raise InviteInvalid()
    invite = Invite(int(parts[0]), int(parts[1]), int(parts[2]), parts[3])
    if invite.expires <= now or invite.uses < 1:
        raise InviteInvalid()
    return invite


def spend(queue: Queue, invite: Invite, now: float) -> None:
    """Count one use of ``invite``; InviteInvalid when it gave all its places."""
    ttl = invite.expires - now + 1
    if not get_store().claim_use(queue.store_id, f"invite:{invite.salt}", invite.uses, ttl, now):
        raise InviteInvalid()


def _mac(queue_id: str, body: str) -> str:
    return short_mac("invites", f"{queue_id}|{body}")
