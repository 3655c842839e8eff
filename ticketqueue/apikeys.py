"""Operator API keys: made once, shown once, stored as a digest, refused once revoked.

A key reads ``tqk_<prefix>_<secret>``: the prefix (public, unique) finds the row, the SHA-256 of
the whole key must match its digest. The secret is 32 random bytes, so a fast hash is enough:
nothing short of the key itself can be tried against a digest of 256 random bits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db.models import Count
from django.db.models.signals import pre_delete
from django.dispatch import receiver
from django.utils import timezone

from .models import OperatorKey, Queue, Tenant

__all__ = ["KEY_START", "authenticate", "issue", "mint", "revoke"]

KEY_START = "tqk_"
#: How stale ``last_used_at`` may get: one write a minute per key at most, not one per request.
LAST_USED_EVERY = timedelta(minutes=1)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def mint(row: OperatorKey) -> str:
    """Give the unsaved ``row`` a new key (its prefix and digest); returns the key itself."""
    row.prefix = secrets.token_hex(6)
    raw = f"{KEY_START}{row.prefix}_{secrets.token_urlsafe(32)}"
    row.digest = _digest(raw)
    return raw


def issue(
    name: str,
    *,
    tenant: Tenant | None = None,
    queues: Iterable[Queue] = (),
    access: str = OperatorKey.Access.READ,
    created_by: Any = None,
) -> tuple[OperatorKey, str]:
    """A new key: (its row, the key itself, which is shown once and never stored)."""
    queues = list(queues)
    if any(q.tenant_id != (tenant.pk if tenant else None) for q in queues):
        raise ValueError("A key reaches only queues of its own tenant.")
    row = OperatorKey(
        name=name,
        tenant=tenant,
        access=access,
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    raw = mint(row)
    row.save()
    row.queues.set(queues)
    return row, raw


def authenticate(raw: str) -> OperatorKey | None:
    """The live key ``raw`` is, or None (malformed, unknown, wrong secret or revoked)."""
    if not raw.startswith(KEY_START):
        return None
    prefix, _, secret = raw[len(KEY_START) :].partition("_")
    if not prefix or not secret or len(raw) > 200:
        return None
    row = OperatorKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if row is None or not hmac.compare_digest(row.digest, _digest(raw)):
        return None
    if row.revoked_at is not None:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        OperatorKey.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row


def revoke(key: OperatorKey) -> bool:
    """Revoke ``key`` now; False when it already was."""
    done = OperatorKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    key.refresh_from_db(fields=["revoked_at"])
    return bool(done)


@receiver(pre_delete, sender=Queue, dispatch_uid="ticketqueue.apikeys.queue_deleted")
def _revoke_keys_left_without_queues(sender: Any, instance: Queue, **kwargs: Any) -> None:
    """A key that names only this queue would, once it is gone, name none: and a key that
    names none reaches every queue of its tenant. It is revoked instead of widened."""
    listing = OperatorKey.objects.filter(queues=instance, revoked_at__isnull=True)
    only = (
        OperatorKey.objects.filter(pk__in=list(listing.values_list("pk", flat=True)))
        .annotate(n=Count("queues"))
        .filter(n=1)
        .values_list("pk", flat=True)
    )
    OperatorKey.objects.filter(pk__in=list(only)).update(revoked_at=timezone.now())
