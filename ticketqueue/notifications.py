"""Notifications for people with no live connection to the queue: their milestones (within
N of the front, about M minutes left, your turn, your pass ends soon; ``ticketqueue.milestones``)
through every configured channel.

Delivery channels are ``Notifier`` classes named in ``NOTIFIERS``: email (the default), a
signed webhook to the site's own relay, Firebase Cloud Messaging and Apple Push
(``ticketqueue.push``, to the devices people registered), or a subclass of ``Notifier``.
``LocmemNotifier`` is a test double for sites' own tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from . import services
from .milestones import Milestone

if TYPE_CHECKING:
    from .models import Queue
    from .store import Admission

__all__ = [
    "EmailNotifier",
    "LocmemNotifier",
    "NotificationFailed",
    "Notifier",
    "Recipient",
    "WebhookNotifier",
    "absent",
    "close_notifiers",
    "deliver",
    "deliver_milestone",
    "get_notifiers",
    "notify_turn",
    "user_emails",
    "webhook_signature",
]

log = logging.getLogger("ticketqueue")

#: (seq, identity, until): one person to tell, and when the news stops mattering (a pass's
#: expiry); JSON-friendly so the Celery task can carry it.
Target = tuple[int, str, float]

#: The milestones of someone still waiting: their news has no pass behind it.
WAITING_MILESTONES = frozenset({Milestone.NEAR, Milestone.SOON})


@dataclass(frozen=True)
class Recipient:
    """One identity to tell that it reached a milestone, with what the message needs.

    ``milestone`` is ``turn`` (the pass is ready), ``ending`` (it ends at ``expires_at``),
    ``near`` (``within`` places of the front) or ``soon`` (about ``minutes`` to go).
    ``expires_at`` is the pass's expiry; None for someone still waiting."""

    queue_id: str
    queue_slug: str
    queue_name: str
    seq: int
    identity: str
    expires_at: float | None
    url: str | None = None
    milestone: str = Milestone.TURN
    within: int | None = None
    minutes: int | None = None

    @property
    def id(self) -> str:
        """Names this news: a receiver that sees it twice (a retried batch) drops the repeat."""
        base = f"{self.queue_id}.{self.seq}"
        return base if self.milestone == Milestone.TURN else f"{base}.{self.milestone}"

    def text(self) -> tuple[str, str]:
        """(title, body) in the active language: what a person reads on any channel."""
        queue = self.queue_name
        if self.milestone == Milestone.NEAR:
            return (
                _("Almost your turn: %(queue)s") % {"queue": queue},
                _(
                    "You are within %(within)d places of the front of the line for %(queue)s. "
                    "Keep the page open, or come back to it now."
                )
                % {"within": self.within or 0, "queue": queue},
            )
        if self.milestone == Milestone.SOON:
            return (
                _("About %(minutes)d minutes to your turn: %(queue)s")
                % {"minutes": self.minutes or 0, "queue": queue},
                _(
                    "Your turn in the line for %(queue)s is about %(minutes)d minutes away. "
                    "Come back to the page before then."
                )
                % {"minutes": self.minutes or 0, "queue": queue},
            )
        until = datetime.fromtimestamp(self.expires_at or 0, tz=UTC).strftime("%H:%M")
        if self.milestone == Milestone.ENDING:
            return (
                _("Your pass ends soon: %(queue)s") % {"queue": queue},
                _(
                    "Your pass for %(queue)s ends at %(until)s UTC. Finish your purchase "
                    "before then."
                )
                % {"queue": queue, "until": until},
            )
        return (
            _("Your turn: %(queue)s") % {"queue": queue},
            _(
                "It is your turn in the waiting room for %(queue)s. Your pass lets you buy "
                "until %(until)s UTC."
            )
            % {"queue": queue, "until": until},
        )


class NotificationFailed(Exception):
    """A notifier that asks to be retried failed; its recipients were released for the retry
    (the Celery task retries on this).

    A notifier that reached some recipients and not others raises it with ``failed`` (the
    ones to retry) and ``sent`` (how many it told): only the failed ones are released."""

    def __init__(
        self, message: str = "", *, failed: Sequence[Recipient] | None = None, sent: int = 0
    ) -> None:
        super().__init__(message)
        self.failed = failed
        self.sent = sent


class Notifier:
    """One delivery channel. Subclass and override ``notify``; name it in ``NOTIFIERS``."""

    #: Names the channel's claims (each admission is sent at most once per channel); the
    #: class name when empty.
    name: ClassVar[str] = ""
    #: False: a failed send is logged and lost (at most once: email through an SMTP server
    #: that may have sent part of the batch). True: the batch is released and the Celery task
    #: retries it (at least once: the receiver drops repeats by each recipient's ``id``).
    retry: ClassVar[bool] = False

    @property
    def channel(self) -> str:
        return self.name or type(self).__qualname__

    def close(self) -> None:
        """Let go of connections (the notifiers are built again with new settings)."""

    def notify(self, recipients: Sequence[Recipient]) -> int:
        """Tell these people they reached ``recipient.milestone`` (one milestone per call);
        return how many were told.

        Identities this channel cannot reach (no email, no registered device) are skipped.
        """
        raise NotImplementedError


class EmailNotifier(Notifier):
    """An email through Django's email backend, to identities ``EMAIL_RESOLVER`` resolves."""

    name = "email"

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
        subject, body = recipient.text()
        lines = [body, recipient.url] if recipient.url else [body]
        return EmailMessage(subject, "\n\n".join(lines), to=[email])


class WebhookNotifier(Notifier):
    """A signed JSON POST to ``WEBHOOK_URL``: the site's own relay (Web Push, SMS, its app's
    push) turns it into a notification for each person. One request per batch.

    The body is ``{"type": <milestone>, "queue": {id, slug, name}, "sent_at": <unix time>,
    "recipients": [{id, seq, identity, expires_at, url, title, body}, ...]}`` (plus
    ``within`` for ``near``, ``minutes`` for ``soon``); ``id`` names the news (the pass's
    ``jti`` ``<queue id>.<seq>`` for ``turn``, ``<queue id>.<seq>.<milestone>`` for the
    others), so the relay drops a repeat. Headers:
    ``X-Ticketqueue-Timestamp`` (unix seconds) and ``X-Ticketqueue-Signature``
    (``v1=`` + hex HMAC-SHA256 of ``<timestamp>.<body>`` with ``WEBHOOK_SECRET``); the relay
    recomputes it, compares in constant time and refuses old timestamps (replays).

    A failure (connection, timeout, a status other than 2xx) releases the batch and the
    Celery task retries it with backoff: delivery is at least once.
    """

    name = "webhook"
    retry = True
    #: Recipients per request: a big admission round becomes a few bodies of ~100 KB.
    BATCH = 500

    def notify(self, recipients: Sequence[Recipient]) -> int:
        from .conf import queue_settings

        url, secret = queue_settings.WEBHOOK_URL, queue_settings.WEBHOOK_SECRET
        if not secret or not str(url or "").startswith(("https://", "http://")):
            raise ValueError("WebhookNotifier needs an http(s) WEBHOOK_URL and WEBHOOK_SECRET.")
        timeout = float(queue_settings.WEBHOOK_TIMEOUT)
        for start in range(0, len(recipients), self.BATCH):
            self.post(url, str(secret), recipients[start : start + self.BATCH], timeout)
        return len(recipients)

    def body(self, recipients: Sequence[Recipient]) -> dict[str, Any]:
        first = recipients[0]
        body: dict[str, Any] = {
            "type": first.milestone,
            "queue": {"id": first.queue_id, "slug": first.queue_slug, "name": first.queue_name},
            "sent_at": int(time.time()),
        }
        if first.milestone == Milestone.NEAR:
            body["within"] = first.within
        elif first.milestone == Milestone.SOON:
            body["minutes"] = first.minutes
        body["recipients"] = [
            {
                "id": r.id,
                "seq": r.seq,
                "identity": r.identity,
                "expires_at": r.expires_at,
                "url": r.url,
                **dict(zip(("title", "body"), r.text(), strict=True)),
            }
            for r in recipients
        ]
        return body

    def post(self, url: str, secret: str, recipients: Sequence[Recipient], timeout: float) -> None:
        body = json.dumps(self.body(recipients), separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        request = urllib.request.Request(  # noqa: S310 - the site's own http(s) URL, checked
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "ticketqueue-webhook",
                "X-Ticketqueue-Timestamp": timestamp,
                "X-Ticketqueue-Signature": webhook_signature(secret, timestamp, body),
            },
        )
        # A status of 300 and up raises (HTTPError): a redirect is not followed, as urllib
        # would follow it with a GET that drops the body.
        with _opener.open(request, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"webhook answered {response.status}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Ticketqueue-Signature`` of a webhook body: what a relay recomputes."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


class LocmemNotifier(Notifier):
    """Test double: keeps every recipient in ``LocmemNotifier.outbox``."""

    name = "locmem"
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


def close_notifiers() -> None:
    """Close and forget the notifiers built so far (tests; new settings)."""
    with _cache_lock:
        built = [n for key, value in _cache.items() if key[0] == "notifiers" for n in value]
        _cache.clear()
    for notifier in built:
        notifier.close()


def absent(queue: Queue, admissions: Sequence[Admission], now: float | None = None) -> list[Target]:
    """The admissions whose identity has no live connection: the ones to notify."""
    if not admissions:
        return []
    live = services.connected(queue, [a.identity for a in admissions], now)
    return [(a.seq, a.identity, a.expires_at) for a in admissions if a.identity not in live]


def notify_turn(queue: Queue, admissions: Sequence[Admission], now: float | None = None) -> int:
    """Tell every admitted identity without a live connection that its turn came."""
    return deliver(queue, absent(queue, admissions, now), now)


def deliver_milestone(queue: Queue, milestone: str, targets: Iterable[Target]) -> int:
    """``deliver`` for a milestone other than the turn: the tick's default way to tell the
    absent people ``ticketqueue.milestones`` found (the Celery path queues a task instead)."""
    return deliver(queue, targets, milestone=milestone)


def deliver(
    queue: Queue,
    targets: Iterable[Target],
    now: float | None = None,
    *,
    retry: bool = False,
    milestone: str = Milestone.TURN,
) -> int:
    """Tell these people through every notifier that they reached ``milestone``; returns how
    many were told.

    Each person is claimed per milestone and notifier first (one store round trip for the
    batch), so a retried or redelivered delivery never tells anyone twice on one channel. A
    failing notifier is logged and skipped; one that asks to be retried (``Notifier.retry``)
    gets its claims back, and with ``retry`` (the Celery task) NotificationFailed is raised
    once the other notifiers are done, so the task retries the released ones only.
    """
    from .conf import queue_settings

    now = services.clock() if now is None else now
    targets = [t for t in targets if t[2] > now]  # a pass already over is no news
    if not targets:
        return 0
    url = queue_settings.NOTIFY_URL
    link = url.format(queue=queue.slug) if url else None
    waiting = milestone in WAITING_MILESTONES
    everyone = [
        Recipient(
            queue_id=queue.store_id,
            queue_slug=queue.slug,
            queue_name=queue.name,
            seq=seq,
            identity=identity,
            expires_at=None if waiting else until,
            url=link,
            milestone=milestone,
            within=queue.notify_within if milestone == Milestone.NEAR else None,
            minutes=queue.notify_minutes_left if milestone == Milestone.SOON else None,
        )
        for seq, identity, until in targets
    ]
    ttl = max(t[2] for t in targets) - now
    sent = 0
    told: set[int] = set()
    failed: list[str] = []
    for notifier in get_notifiers():
        channel = f"{milestone}:{notifier.channel}"
        claimed = _claim(queue.store_id, channel, [r.seq for r in everyone], ttl)
        recipients = [r for r in everyone if r.seq in claimed]
        if not recipients:
            continue
        try:
            count = notifier.notify(recipients)
        except Exception as exc:
            log.exception(
                "%s notification failed",
                milestone,
                extra={"queue": queue.slug, "notifier": type(notifier).__name__},
            )
            back = list(recipients)
            if isinstance(exc, NotificationFailed) and exc.failed is not None:
                back = list(exc.failed)  # told the others: they keep their claims
                sent += exc.sent
                told.update({r.seq for r in recipients} - {r.seq for r in back})
            if notifier.retry:
                _unclaim(queue.store_id, channel, [r.seq for r in back])
                failed.append(channel)
            continue
        sent += count
        if count:
            told.update(r.seq for r in recipients)
    if sent:
        log.info(
            "%s notified",
            milestone,
            extra={
                "event": f"{milestone}_notified",
                "queue": queue.slug,
                "seqs": sorted(told),
                "sent": sent,
            },
        )
    if failed and retry:
        raise NotificationFailed(f"{', '.join(failed)} failed for queue {queue.slug}")
    return sent


# -- at most one notification per admission and channel ----------------------------------


def _claim(queue_id: str, channel: str, seqs: list[int], ttl: float) -> set[int]:
    """The seqs not claimed on this channel before, now claimed for the pass's life (``ttl``
    seconds) and a minute more."""
    from .store import get_store

    return get_store().claims.claim(queue_id, channel, seqs, max(60, int(ttl) + 60))


def _unclaim(queue_id: str, channel: str, seqs: list[int]) -> None:
    """Give these claims back (their send failed and will be retried)."""
    from .store import get_store

    get_store().claims.unclaim(queue_id, channel, seqs)
