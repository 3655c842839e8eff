"""Push notifications to the phones people registered: Firebase Cloud Messaging (HTTP v1) and
the Apple Push Notification service (HTTP/2 with token authentication).

A mobile app registers its push token for a queue under its identity
(``POST queues/<slug>/devices/``, ``register``); the notifiers then tell that identity's
devices each milestone it reaches while away (``ticketqueue.notifications``). One request per
device, sent over one HTTP/2 connection by ``PUSH_CONCURRENCY`` threads. A token the service
says is gone (uninstalled app, expired token) is forgotten; a 429 or 5xx is handed back to be
retried with backoff; both carry a collapse id, so a repeat replaces the earlier banner.

Needs ``httpx[http2]`` (``pip install ticketqueue[push]``).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import jwt

from .core import InvalidInput
from .notifications import NotificationFailed, Notifier, Recipient

if TYPE_CHECKING:
    from .models import PushDevice, Queue

__all__ = [
    "APNsNotifier",
    "FCMNotifier",
    "MAX_DEVICES",
    "PushNotifier",
    "forget",
    "register",
    "tokens_for",
    "unregister",
]

log = logging.getLogger("ticketqueue")

#: Devices one identity may register for one queue; a new one past it replaces the oldest.
MAX_DEVICES = 5
#: What a push token looks like: FCM's are letters, digits and ``:_-`` (about 160), APNs's
#: are hex (64 today; Apple says not to rely on the length).
TOKEN_PATTERNS = {
    "fcm": re.compile(r"[A-Za-z0-9_:\-.]{20,1024}"),
    "apns": re.compile(r"[0-9A-Fa-f]{64,200}"),
}

SENT, GONE, RETRY, FAILED = "sent", "gone", "retry", "failed"


# -- registration -----------------------------------------------------------------------------


def check_token(platform: str, token: Any) -> str:
    """The token if ``platform`` could have issued it, else InvalidInput (nothing stored)."""
    pattern = TOKEN_PATTERNS.get(platform)
    if pattern is None:
        raise InvalidInput("platform must be 'fcm' or 'apns'.")
    if not isinstance(token, str) or not pattern.fullmatch(token):
        raise InvalidInput(f"token is not a {platform} push token.")
    return token


def register(queue: Queue, identity: str, platform: str, token: str) -> PushDevice:
    """Tell ``identity``'s milestones in ``queue`` to this device too. A token registered by
    another identity moves to this one (the phone changed hands or logged in); past
    MAX_DEVICES the identity's oldest device is dropped."""
    from django.db import transaction

    from .models import PushDevice

    token = check_token(platform, token)
    with transaction.atomic():
        device, _created = PushDevice.objects.update_or_create(
            queue=queue, platform=platform, token=token, defaults={"identity": identity}
        )
        mine = PushDevice.objects.filter(queue=queue, identity=identity).order_by("-updated_at")
        stale = list(mine.values_list("pk", flat=True)[MAX_DEVICES:])
        if stale:
            PushDevice.objects.filter(pk__in=stale).delete()
    return device


def unregister(queue: Queue, identity: str, platform: str, token: str) -> bool:
    """Stop pushing to this device; False if the identity had no such device."""
    from .models import PushDevice

    deleted, _ = PushDevice.objects.filter(
        queue=queue, identity=identity, platform=platform, token=token
    ).delete()
    return bool(deleted)


def tokens_for(queue_id: str, identities: Iterable[str], platform: str) -> dict[str, list[str]]:
    """identity -> its registered tokens on ``platform`` (one query)."""
    from .models import PushDevice

    found: dict[str, list[str]] = defaultdict(list)
    rows = PushDevice.objects.filter(
        queue_id=int(queue_id), platform=platform, identity__in=list(set(identities))
    ).values_list("identity", "token")
    for identity, token in rows:
        found[identity].append(token)
    return found


def forget(queue_id: str, platform: str, tokens: Iterable[str]) -> int:
    """Drop tokens the push service called gone."""
    from .models import PushDevice

    deleted, _ = PushDevice.objects.filter(
        queue_id=int(queue_id), platform=platform, token__in=list(tokens)
    ).delete()
    return deleted


# -- the notifiers ----------------------------------------------------------------------------


class PushNotifier(Notifier):
    """One request per registered device of each recipient, over one HTTP/2 client shared by
    ``PUSH_CONCURRENCY`` threads. Subclasses say how one device is told (``send``)."""

    platform: ClassVar[str] = ""
    retry = True
    #: Whether the service speaks HTTP/1.1 too (APNs: HTTP/2 only).
    http1: ClassVar[bool] = True

    def __init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        from .conf import queue_settings

        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(
                    http1=self.http1,
                    http2=True,
                    timeout=float(queue_settings.PUSH_TIMEOUT),
                    follow_redirects=False,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def notify(self, recipients: Sequence[Recipient]) -> int:
        from .conf import queue_settings

        if not recipients:
            return 0
        queue_id = recipients[0].queue_id
        tokens = tokens_for(queue_id, [r.identity for r in recipients], self.platform)
        jobs = [(r, token) for r in recipients for token in tokens.get(r.identity, ())]
        if not jobs:
            return 0
        self.prepare()
        workers = max(1, min(int(queue_settings.PUSH_CONCURRENCY), len(jobs)))
        with ThreadPoolExecutor(workers, thread_name_prefix=f"tq-{self.platform}") as pool:
            outcomes = list(pool.map(self._send_one, jobs))
        told: set[int] = set()
        again: dict[int, Recipient] = {}
        gone = []
        for (recipient, token), outcome in zip(jobs, outcomes, strict=True):
            if outcome == SENT:
                told.add(recipient.seq)
            elif outcome == GONE:
                gone.append(token)
            elif outcome == RETRY:
                again[recipient.seq] = recipient
        if gone:
            forget(queue_id, self.platform, gone)
        if again:
            # A device that failed for now gets the news again; one its other device already
            # showed is replaced there by its collapse id, not shown twice.
            raise NotificationFailed(
                f"{self.platform}: {len(again)} to retry",
                failed=list(again.values()),
                sent=len(told - set(again)),
            )
        return len(told)

    def _send_one(self, job: tuple[Recipient, str]) -> str:
        recipient, token = job
        try:
            return self.send(self.client(), recipient, token)
        except Exception as exc:  # connection refused, timeout, a broken answer
            log.warning(
                "push failed",
                extra={"platform": self.platform, "queue": recipient.queue_slug, "error": str(exc)},
            )
            return RETRY

    def prepare(self) -> None:
        """Check the configuration (and warm credentials) before any request."""

    def send(self, client: Any, recipient: Recipient, token: str) -> str:
        """Tell one device; SENT, GONE (forget the token), RETRY or FAILED (logged, dropped)."""
        raise NotImplementedError


def collapse_id(recipient: Recipient) -> str:
    """One id per piece of news (at most 64 bytes, APNs's limit): a repeat replaces it."""
    return recipient.id[:64]


def _seconds_left(recipient: Recipient, now: float) -> int:
    until = recipient.expires_at or (now + 3600)
    return max(0, int(until - now))


def _load(value: Any, what: str) -> str:
    """A secret given as a file path or as the text itself (from the environment)."""
    if not value:
        raise ValueError(f"{what} is not set.")
    text = str(value)
    if "-----BEGIN" in text or text.lstrip().startswith("{"):
        return text
    return Path(text).read_text(encoding="utf-8")


class FCMNotifier(PushNotifier):
    """Firebase Cloud Messaging, HTTP v1: ``POST /v1/projects/<project>/messages:send`` per
    device with an OAuth 2.0 access token, got from the service account's key (``FCM_CREDENTIALS``:
    the JSON file Firebase gives, or its text) by a signed JWT grant and reused until it ends."""

    name = "fcm"
    platform = "fcm"
    SCOPE = "https://www.googleapis.com/auth/firebase.messaging"

    def __init__(self) -> None:
        super().__init__()
        self._access: tuple[str, float] | None = None  # (token, valid until)
        self._fetching = threading.Lock()

    def account(self) -> dict[str, Any]:
        from .conf import queue_settings

        value = queue_settings.FCM_CREDENTIALS
        account = value if isinstance(value, dict) else json.loads(_load(value, "FCM_CREDENTIALS"))
        missing = {"client_email", "private_key", "project_id", "token_uri"} - set(account)
        if missing:
            raise ValueError(f"FCM_CREDENTIALS lacks {', '.join(sorted(missing))}.")
        return account

    def prepare(self) -> None:
        self.account()

    def access_token(self, client: Any, *, renew: bool = False, refused: str = "") -> str:
        """The access token, fetched once for every thread (one fetch at a time); ``renew``:
        the service refused ``refused``, so a newer one is needed."""
        with self._fetching:
            access = self._access
            if access and access[1] > time.time() + 60 and not (renew and access[0] == refused):
                return access[0]
            return self._fetch(client)

    def _fetch(self, client: Any) -> str:
        account = self.account()
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": account["client_email"],
                "scope": self.SCOPE,
                "aud": account["token_uri"],
                "iat": now,
                "exp": now + 3600,
            },
            account["private_key"],
            algorithm="RS256",
            headers={"kid": account.get("private_key_id")}
            if account.get("private_key_id")
            else None,
        )
        answer = client.post(
            account["token_uri"],
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
        )
        answer.raise_for_status()
        body = answer.json()
        token = str(body["access_token"])
        self._access = (token, now + float(body.get("expires_in", 3600)))
        return token

    def message(self, recipient: Recipient, token: str) -> dict[str, Any]:
        title, body = recipient.text()
        return {
            "message": {
                "token": token,
                "notification": {"title": title, "body": body},
                "data": {
                    "queue": recipient.queue_slug,
                    "milestone": recipient.milestone,
                    "seq": str(recipient.seq),
                    "expires_at": ""
                    if recipient.expires_at is None
                    else repr(recipient.expires_at),
                    "url": recipient.url or "",
                },
                "android": {
                    "collapse_key": collapse_id(recipient),
                    "priority": "high",
                    "ttl": f"{_seconds_left(recipient, time.time())}s",
                },
            }
        }

    def send(self, client: Any, recipient: Recipient, token: str) -> str:
        from .conf import queue_settings

        account = self.account()
        base = queue_settings.FCM_ENDPOINT.rstrip("/")
        url = f"{base}/v1/projects/{account['project_id']}/messages:send"
        body = self.message(recipient, token)
        access = ""
        for attempt in range(2):
            access = self.access_token(client, renew=attempt > 0, refused=access)
            answer = client.post(url, json=body, headers={"Authorization": f"Bearer {access}"})
            if answer.status_code != 401:
                break  # a 401 is an access token that ended early: one new one, once
        status = answer.status_code
        if status == 200:
            return SENT
        if status == 404 or _fcm_error(answer) == "UNREGISTERED":
            return GONE
        if status == 429 or status >= 500:
            return RETRY
        log.warning(
            "fcm refused a message",
            extra={"queue": recipient.queue_slug, "status": status, "error": _fcm_error(answer)},
        )
        return FAILED


def _fcm_error(answer: Any) -> str | None:
    """The FCM error code (``UNREGISTERED``, ``INVALID_ARGUMENT``...) of an error answer."""
    try:
        error = answer.json()["error"]
        for detail in error.get("details", []):
            if "errorCode" in detail:
                return str(detail["errorCode"])
        return str(error.get("status"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class APNsNotifier(PushNotifier):
    """Apple Push Notification service over HTTP/2 with token authentication: ``POST
    /3/device/<token>`` per device, an ES256 provider token from the ``.p8`` key (``APNS_KEY``,
    ``APNS_KEY_ID``, ``APNS_TEAM_ID``) reused for 50 minutes (Apple refuses one older than an
    hour and renewing more often than every 20), ``apns-topic`` = ``APNS_TOPIC`` (the app's
    bundle id). ``APNS_ENDPOINT`` is production by default; the sandbox is
    ``https://api.sandbox.push.apple.com``."""

    name = "apns"
    platform = "apns"
    http1 = False
    TOKEN_LIFE = 50 * 60
    GONE_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered"})

    def __init__(self) -> None:
        super().__init__()
        self._provider: tuple[str, float] | None = None  # (token, made at)

    def settings(self) -> tuple[str, str, str, str]:
        from .conf import queue_settings

        key = _load(queue_settings.APNS_KEY, "APNS_KEY")
        ids = (queue_settings.APNS_KEY_ID, queue_settings.APNS_TEAM_ID, queue_settings.APNS_TOPIC)
        if not all(ids):
            raise ValueError("APNsNotifier needs APNS_KEY_ID, APNS_TEAM_ID and APNS_TOPIC.")
        return key, str(ids[0]), str(ids[1]), str(ids[2])

    def prepare(self) -> None:
        self.settings()

    def provider_token(self, *, renew_older_than: float | None = None) -> str:
        now = time.time()
        with self._lock:
            made = self._provider
            fresh = made and now - made[1] < self.TOKEN_LIFE
            if made and fresh and (renew_older_than is None or made[1] >= renew_older_than):
                return made[0]
            key, key_id, team_id, _topic = self.settings()
            token = jwt.encode(
                {"iss": team_id, "iat": int(now)}, key, algorithm="ES256", headers={"kid": key_id}
            )
            self._provider = (token, now)
            return token

    def send(self, client: Any, recipient: Recipient, token: str) -> str:
        from .conf import queue_settings

        _key, _key_id, _team, topic = self.settings()
        title, body = recipient.text()
        payload = {
            "aps": {"alert": {"title": title, "body": body}, "sound": "default"},
            "queue": recipient.queue_slug,
            "milestone": recipient.milestone,
            "seq": recipient.seq,
            "expires_at": recipient.expires_at,
            "url": recipient.url,
        }
        now = time.time()
        url = f"{queue_settings.APNS_ENDPOINT.rstrip('/')}/3/device/{token}"
        made_before = None
        for _attempt in range(2):
            provider = self.provider_token(renew_older_than=made_before)
            answer = client.post(
                url,
                json=payload,
                headers={
                    "authorization": f"bearer {provider}",
                    "apns-topic": topic,
                    "apns-push-type": "alert",
                    "apns-priority": "10",
                    "apns-expiration": str(int(now + _seconds_left(recipient, now))),
                    "apns-collapse-id": collapse_id(recipient),
                },
            )
            if not (answer.status_code == 403 and _apns_reason(answer) == "ExpiredProviderToken"):
                break
            made_before = time.time()  # renew once: another thread may have done it already
        status, reason = answer.status_code, _apns_reason(answer)
        if status == 200:
            return SENT
        if status == 410 or reason in self.GONE_REASONS:
            return GONE
        if status == 429 or status >= 500:
            return RETRY
        log.warning(
            "apns refused a notification",
            extra={"queue": recipient.queue_slug, "status": status, "error": reason},
        )
        return FAILED


def _apns_reason(answer: Any) -> str | None:
    try:
        return str(answer.json()["reason"])
    except (ValueError, KeyError, TypeError):
        return None
