""" "Your turn" notifications for admitted people with no live connection to the queue.

Delivery channels are ``Notifier`` classes named in ``NOTIFIERS`` (email by default; web push,
FCM or APNs by subclassing). ``LocmemNotifier`` is a test double for sites' own tests.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from . import presence

if TYPE_CHECKING:
    from .models import Queue
    from .store import Admission

__all__ = [
    "EmailNotifier",
    "LocmemNotifier",
    "Notifier",
    "Recipient",
    "absent",
    "deliver",
    "get_notifiers",
    "notify_turn",
    "user_emails",
]

log = logging.getLogger("ticketqueue")

#: (seq, identity, pass expiry): what a notification needs of one admission; JSON-friendly
#: so the Celery task can carry it.
Target = tuple[int, str, float]


@dataclass(frozen=True)
class Recipient:
    """One admitted identity to tell, with what the message needs."""

    queue_id: str
    queue_slug: str
    queue_name: str
    seq: int
    identity: str
    expires_at: float
    url: str | None = None


class Notifier:
    """One delivery channel. Subclass and override ``notify``; name it in ``NOTIFIERS``."""

    def notify(self, recipients: Sequence[Recipient]) -> int:
        """Tell these people their turn came; return how many were told.

        Identities this channel cannot reach (no email, no push subscription) are skipped.
        """
        raise NotImplementedError


class EmailNotifier(Notifier):
    """An email through Django's email backend, to identities ``EMAIL_RESOLVER`` resolves."""

    def notify(self, recipients: Sequence[Recipient]) -> int:
        from .conf import queue_settings

        resolver = _resolver(queue_settings.EMAIL_RESOLVER)
        emails = resolver([r.identity for r in recipients])
        messages = [
            self.message(recipient, emails[recipient.identity])
            for recipient in recipients
            if emails.get(recipient.identity)
        ]
        if not messages:
            return 0
        with get_connection() as connection:
            return connection.send_messages(messages) or 0

    def message(self, recipient: Recipient, email: str) -> EmailMessage:
        until = datetime.fromtimestamp(recipient.expires_at, tz=UTC)
        subject = _("Your turn: %(queue)s") % {"queue": recipient.queue_name}
        lines = [
            _(
                "It is your turn in the waiting room for %(queue)s. Your pass lets you buy "
                "until %(until)s UTC."
            )
            % {"queue": recipient.queue_name, "until": until.strftime("%H:%M")},
        ]
        if recipient.url:
            lines.append(recipient.url)
        return EmailMessage(subject, "\n\n".join(lines), to=[email])


class LocmemNotifier(Notifier):
    """Test double: keeps every recipient in ``LocmemNotifier.outbox``."""

    outbox: ClassVar[list[Recipient]] = []

    def notify(self, recipients: Sequence[Recipient]) -> int:
        self.outbox.extend(recipients)
        return len(recipients)


def user_emails(identities: Iterable[str]) -> dict[str, str]:
    """The default ``EMAIL_RESOLVER``: ``user:<pk>`` -> that active user's email address.

    Anonymous visitors have none and are skipped. One query for the whole batch.
    """
    user_model = get_user_model()
    pk_field = user_model._meta.pk
    wanted: dict[str, str] = {}
    for identity in identities:
        kind, _sep, raw = identity.partition(":")
        if kind != "user" or not raw:
            continue
        try:
            pk = pk_field.to_python(raw)
        except ValidationError:
            continue
        wanted[str(pk)] = identity
    if not wanted:
        return {}
    field = user_model.get_email_field_name()
    rows = user_model._default_manager.filter(pk__in=list(wanted), is_active=True).values_list(
        "pk", field
    )
    return {wanted[str(pk)]: email for pk, email in rows if email}


_cache: dict[Any, Any] = {}
_cache_lock = threading.Lock()


def _resolver(path: Any) -> Any:
    key = ("resolver", path)
    if key not in _cache:
        with _cache_lock:
            _cache[key] = import_string(path) if isinstance(path, str) else path
    return _cache[key]


def get_notifiers() -> list[Notifier]:
    """The configured notifiers, built once per ``NOTIFIERS`` value."""
    from .conf import queue_settings

    paths = tuple(queue_settings.NOTIFIERS)
    key = ("notifiers", paths)
    if key not in _cache:
        with _cache_lock:
            _cache[key] = [(import_string(p) if isinstance(p, str) else p)() for p in paths]
    return _cache[key]


def absent(queue: Queue, admissions: Sequence[Admission], now: float | None = None) -> list[Target]:
    """The admissions whose identity has no live connection: the ones to notify."""
    if not admissions:
        return []
    live = presence.connected(queue.store_id, [a.identity for a in admissions], now)
    return [(a.seq, a.identity, a.expires_at) for a in admissions if a.identity not in live]


def notify_turn(queue: Queue, admissions: Sequence[Admission], now: float | None = None) -> int:
    """Tell every admitted identity without a live connection that its turn came."""
    return deliver(queue, absent(queue, admissions, now), now)


def deliver(queue: Queue, targets: Iterable[Target], now: float | None = None) -> int:
    """Send the notifications through every notifier; returns how many were sent.

    Each admission is claimed first (one store round trip for the batch), so a retried or
    redelivered delivery never tells anyone twice. A failing notifier is logged and skipped.
    """
    from . import services
    from .conf import queue_settings

    now = services.clock() if now is None else now
    targets = [t for t in targets if t[2] > now]  # a pass already over is no news
    if not targets:
        return 0
    claimed = _claim(queue.store_id, [t[0] for t in targets], max(t[2] for t in targets) - now)
    url = queue_settings.NOTIFY_URL
    recipients = [
        Recipient(
            queue_id=queue.store_id,
            queue_slug=queue.slug,
            queue_name=queue.name,
            seq=seq,
            identity=identity,
            expires_at=expires_at,
            url=url.format(queue=queue.slug) if url else None,
        )
        for seq, identity, expires_at in targets
        if seq in claimed
    ]
    if not recipients:
        return 0
    sent = 0
    for notifier in get_notifiers():
        try:
            sent += notifier.notify(recipients)
        except Exception:
            log.exception(
                "turn notification failed",
                extra={"queue": queue.slug, "notifier": type(notifier).__name__},
            )
    if not sent:
        return 0
    log.info(
        "turn notified",
        extra={
            "event": "turn_notified",
            "queue": queue.slug,
            "seqs": [r.seq for r in recipients],
            "sent": sent,
        },
    )
    return sent


# -- at most one notification per admission --------------------------------------------

#: MemoryStore -> {(queue id, seq): claimed until}; dies with its store.
_memory_claims: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], float]] = (
    weakref.WeakKeyDictionary()
)


def _claim(queue_id: str, seqs: list[int], ttl: float) -> set[int]:
    """The seqs not claimed before, now claimed for ``ttl`` seconds (the pass's life)."""
    from .store import get_store

    ttl_s = max(60, int(ttl) + 60)
    store = get_store()
    client = getattr(store, "client", None)
    if client is not None and hasattr(client, "pipeline"):
        prefix = getattr(store, "prefix", "tq")
        pipe = client.pipeline(transaction=False)
        for seq in seqs:
            pipe.set(f"{prefix}:{{{queue_id}}}:notified:{seq}", "1", nx=True, ex=ttl_s)
        return {seq for seq, ok in zip(seqs, pipe.execute(), strict=True) if ok}
    from . import services

    now = services.clock()
    with _cache_lock:
        claims = _memory_claims.setdefault(store, {})
        for key in [k for k, until in claims.items() if until <= now]:
            del claims[key]
        won = set()
        for seq in seqs:
            if (queue_id, seq) not in claims:
                claims[(queue_id, seq)] = now + ttl_s
                won.add(seq)
        return won
