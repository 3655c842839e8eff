"""ticketqueue's settings: one ``TICKETQUEUE`` dict, read lazily, with a default for every key.

TICKETQUEUE = {"STORE": "ticketqueue.store.redis.RedisStore", "REDIS_URL": "redis://..."}
from ticketqueue.conf import queue_settings; queue_settings.PURCHASE_WINDOW
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

__all__ = [
    "DEFAULTS",
    "HELP",
    "QueueSettings",
    "embedded_ticker_on",
    "min_disconnect_grace",
    "on_change",
    "queue_settings",
]

DEFAULTS: dict[str, Any] = {
    "STORE": "ticketqueue.store.memory.MemoryStore",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "REDIS_CLUSTER": False,
    "KEY_PREFIX": "tq",
    "PURCHASE_WINDOW": 900,
    "DISCONNECT_GRACE": 1800,
    "TICK_INTERVAL": 1.0,
    "TICK_BATCHES": 1,
    "REFILL_ON_RELEASE": True,
    "EMBEDDED_TICKER": "auto",
    "UPDATE_INTERVAL": 2.0,
    "RESYNC_INTERVAL": 60.0,
    "HEARTBEAT_INTERVAL": 25.0,
    "LIVE_BROADCAST": "store",
    "WS_MAX_MESSAGE": 4096,
    "SOCKETS_PER_PROCESS": None,
    "WS_MESSAGE_RATE": 5.0,
    "WS_MESSAGE_BURST": 20,
    "PASS_ISSUER": "ticketqueue",
    "PASS_ALGORITHM": "HS256",
    "PASS_SECRET": None,
    "PASS_PRIVATE_KEYS": [],
    "PASS_PUBLIC_KEYS": [],
    "STORE_FAILURE": "closed",
    "PASS_LEEWAY": 5,
    "PASS_COOKIE": "tq_pass",
    "GATE_RECHECK": 30,
    "GATE_RETRY_AFTER": 5,
    "ACCESS_CACHE_SECONDS": 2,
    "GATED_URLS": [],
    "WAITING_URL": None,
    "WAITING_BASE_TEMPLATE": None,
    "VISITOR_COOKIE_AGE": 30 * 24 * 3600,
    "TRUSTED_PROXIES": 0,
    "THROTTLE_RATES": {
        "join_ip": "120/min",
        "join_identity": "20/min",
        "status_ip": "1200/min",
        "status_identity": "120/min",
        "visitor_ip": "120/min",
        "connect_ip": "600/min",
        "connect_identity": "60/min",
        "operator_ip": "600/min",
        "operator_client": "600/min",
        "operator_token_ip": "20/min",
        "device_ip": "120/min",
        "device_identity": "10/min",
    },
    # what a join may have to bring (per queue: work_difficulty, captcha_required)
    "WORK_CHALLENGE_TTL": 300,
    "CAPTCHA_VERIFIER": "ticketqueue.captcha.Turnstile",
    "CAPTCHA_SECRET": None,
    "CAPTCHA_SITE_KEY": None,
    "CAPTCHA_SCRIPT_URL": None,
    "CAPTCHA_VERIFY_URL": None,
    "CAPTCHA_TIMEOUT": 5.0,
    "CAPTCHA_HOSTNAMES": [],
    "PRIORITY_RESOLVER": None,
    # what is left to sell (Queue.stock), asked of the site each tick when set
    "STOCK_RESOLVER": None,
    # operations (issue 5): notifications, presence, retention, metrics
    "NOTIFIERS": ["ticketqueue.notifications.EmailNotifier"],
    "EMAIL_RESOLVER": "ticketqueue.notifications.user_emails",
    "NOTIFY_URL": None,
    "WEBHOOK_URL": None,
    "WEBHOOK_SECRET": None,
    "WEBHOOK_TIMEOUT": 5.0,
    "FCM_CREDENTIALS": None,
    "FCM_ENDPOINT": "https://fcm.googleapis.com",
    "APNS_KEY": None,
    "APNS_KEY_ID": None,
    "APNS_TEAM_ID": None,
    "APNS_TOPIC": None,
    "APNS_ENDPOINT": "https://api.push.apple.com",
    "PUSH_TIMEOUT": 10.0,
    "PUSH_CONCURRENCY": 8,
    "PRESENCE_TIMEOUT": 75,
    "ENTRY_RETENTION": None,
    "ENTRY_ARCHIVER": None,
    "SAMPLE_RETENTION": 7 * 24 * 3600,
    "METRICS_TOKEN": None,
}

#: One line per knob; docs/settings.md repeats these.
HELP: dict[str, str] = {
    "STORE": "Dotted path of the store backend class (MemoryStore or RedisStore).",
    "REDIS_URL": (
        "Redis URL the RedisStore connects to (with REDIS_CLUSTER: any node's, or several"
        " nodes' URLs separated by commas)."
    ),
    "REDIS_CLUSTER": "True when REDIS_URL names a node of a Redis Cluster (one queue per slot).",
    "KEY_PREFIX": "Prefix of every Redis key (keys are PREFIX:{queue id}:...).",
    "PURCHASE_WINDOW": "Default seconds a pass stays valid, for queues that do not set one.",
    "DISCONNECT_GRACE": (
        "Default seconds a waiting entry may go unseen before it is abandoned (>= 3 heartbeats)."
    ),
    "TICK_INTERVAL": "Seconds between ticks of the tick loop (Celery beat ticks each second).",
    "TICK_BATCHES": "Admission batches inside one tick (10 = a batch every 100 ms of a 1 s tick).",
    "REFILL_ON_RELEASE": (
        "A pass ended by release or revoke admits the next in line at once (False: at the "
        "next tick)."
    ),
    "EMBEDDED_TICKER": (
        "Run the tick loop in a thread of the web process: True, False or 'auto' (MemoryStore)."
    ),
    "UPDATE_INTERVAL": (
        "Seconds between two queue_update messages to one client (granted is never delayed); "
        "for protocol version 2, between two line frames to a queue's sockets in one process."
    ),
    "RESYNC_INTERVAL": (
        "Seconds between two exact position reads from the store per WebSocket (spread out)."
    ),
    "HEARTBEAT_INTERVAL": (
        "Seconds between the widget's heartbeats; the server marks presence at most that often."
    ),
    "LIVE_BROADCAST": (
        "How ticks reach the socket processes: 'store' (the store's broadcast: Redis pub/sub "
        "with RedisStore, this process with MemoryStore) or 'local' (this process only)."
    ),
    "SOCKETS_PER_PROCESS": (
        "Most sockets one socket process holds (None: as many as its descriptor limit allows, "
        "less a reserve); past it new ones get HTTP 503 with Retry-After."
    ),
    "WS_MAX_MESSAGE": (
        "Largest client WebSocket message in bytes; larger ones get an error (a join carrying "
        "a CAPTCHA token needs about 2.5 KiB)."
    ),
    "WS_MESSAGE_RATE": "Client WebSocket messages allowed per second per connection (refill).",
    "WS_MESSAGE_BURST": "Client WebSocket messages allowed in a burst per connection.",
    "PASS_ISSUER": "The iss claim of passes.",
    "PASS_ALGORITHM": (
        "JWT algorithm of passes: HS256, RS256, ES256 or EdDSA; verification accepts only it."
    ),
    "PASS_SECRET": "HS256 key; default: derived from SECRET_KEY for passes only.",
    "PASS_PRIVATE_KEYS": "Asymmetric signing keys as [{'kid': ..., 'pem': ...}], newest first.",
    "PASS_PUBLIC_KEYS": "Extra verifying keys [{'kid': ..., 'pem': ...}] kept during rotation.",
    "STORE_FAILURE": (
        "'closed' refuses passes while the store is unreachable; 'open' accepts valid signatures."
    ),
    "PASS_LEEWAY": "Seconds of clock skew allowed between the hosts that sign and check passes.",
    "PASS_COOKIE": "Prefix of the HttpOnly pass cookie of browsers (one per queue: PREFIX_<id>).",
    "GATE_RECHECK": (
        "Seconds a process trusts a pass the store confirmed or admitted while it listened; "
        "ends arrive sooner by pub/sub."
    ),
    "GATE_RETRY_AFTER": "Retry-After seconds sent with refusals of the purchase gate.",
    "ACCESS_CACHE_SECONDS": (
        "Seconds another backend may cache an answer of the access check (Cache-Control; 1-5 "
        "keeps a release or revocation felt within seconds)."
    ),
    "GATED_URLS": (
        "Paths the QueuePassMiddleware gates: [(regex, queue slug or None to take (?P<queue>))]."
    ),
    "WAITING_URL": (
        "Where the gate sends browsers without a pass: a URL with {queue} (the slug), or None "
        "for the 'ticketqueue:waiting' URL."
    ),
    "WAITING_BASE_TEMPLATE": (
        "Template the waiting page extends (its 'title' and 'content' blocks); None: the "
        "site's base.html if it has one, else ticketqueue/base.html."
    ),
    "VISITOR_COOKIE_AGE": "Seconds the anonymous visitor cookie (tq_visitor) lives.",
    "TRUSTED_PROXIES": (
        "Proxies in front of the site that append to X-Forwarded-For (nginx: 1); 0 trusts none."
    ),
    "THROTTLE_RATES": (
        "Per-address and per-identity limits, e.g. '20/min' (None: off): join_ip, join_identity "
        "(REST and socket joins), status_ip, status_identity, visitor_ip (new visitor ids), "
        "connect_ip, connect_identity (sockets opened); operator_ip, operator_client (the "
        "operator API, per address and per key or staff member), operator_token_ip (staff "
        "token logins per address); device_ip, device_identity (push devices registered)."
    ),
    "WORK_CHALLENGE_TTL": "Seconds a proof-of-work challenge may be solved and used (once).",
    "CAPTCHA_VERIFIER": (
        "Dotted path of the CAPTCHA verifier class: ticketqueue.captcha.Turnstile, HCaptcha, "
        "ReCaptcha or a CaptchaVerifier of your own."
    ),
    "CAPTCHA_SECRET": "The CAPTCHA provider's secret key (from the environment, never the repo).",
    "CAPTCHA_SITE_KEY": (
        "The provider's public site key: the widget then shows the CAPTCHA itself (its script)."
    ),
    "CAPTCHA_SCRIPT_URL": "Another URL of the provider's browser script; None: the provider's.",
    "CAPTCHA_VERIFY_URL": "Another siteverify URL (a proxy, a test server); None: the provider's.",
    "CAPTCHA_TIMEOUT": "Seconds a join waits for the CAPTCHA provider (then captcha_unavailable).",
    "CAPTCHA_HOSTNAMES": (
        "Hosts a CAPTCHA must have been solved on (the answer's hostname); empty: any."
    ),
    "STOCK_RESOLVER": (
        "Dotted path of f(queue) -> tickets left (or None: unknown), asked once per tick for "
        "each queue; at 0 the queue closes. Or count it: ticketqueue.release(..., tickets=n)."
    ),
    "PRIORITY_RESOLVER": (
        "Dotted path of f(queue, identity) -> the name of the priority group a new place joins "
        "(or None: the public line); invites to a group need none."
    ),
    "NOTIFIERS": (
        "Dotted paths of the Notifier classes that tell admitted people with no live connection."
    ),
    "EMAIL_RESOLVER": (
        "Dotted path of a function taking identities and returning {identity: email address}."
    ),
    "NOTIFY_URL": "Link in notifications: a URL with {queue} (the slug), or None.",
    "WEBHOOK_URL": (
        "Where WebhookNotifier POSTs each batch of milestones (the site's own relay); http(s)."
    ),
    "WEBHOOK_SECRET": (
        "Key of the webhook's X-Ticketqueue-Signature (HMAC-SHA256 of '<timestamp>.<body>')."
    ),
    "WEBHOOK_TIMEOUT": (
        "Seconds WebhookNotifier waits for the relay; a failure is retried with backoff."
    ),
    "FCM_CREDENTIALS": (
        "FCMNotifier's Firebase service-account key: the JSON file's path or its text "
        "(from the environment, never the repo)."
    ),
    "FCM_ENDPOINT": "Base URL of Firebase Cloud Messaging's HTTP v1 API.",
    "APNS_KEY": "APNsNotifier's .p8 signing key: its path or its PEM text (never in the repo).",
    "APNS_KEY_ID": "The 10-character id of APNS_KEY (Apple's Key ID).",
    "APNS_TEAM_ID": "The Apple developer team id that owns APNS_KEY.",
    "APNS_TOPIC": "The app's bundle id (the apns-topic of each notification).",
    "APNS_ENDPOINT": (
        "Base URL of APNs: production by default; https://api.sandbox.push.apple.com for "
        "development builds."
    ),
    "PUSH_TIMEOUT": "Seconds FCMNotifier and APNsNotifier wait for each answer.",
    "PUSH_CONCURRENCY": "Requests FCMNotifier and APNsNotifier have in flight at once.",
    "PRESENCE_TIMEOUT": (
        "Seconds a connection counts as live without a refresh (a crashed server's sockets end): "
        "two to three heartbeats, so nobody counted as connected is ever abandoned."
    ),
    "ENTRY_RETENTION": (
        "Seconds ended entries are kept before the cleanup task deletes them; None keeps all."
    ),
    "ENTRY_ARCHIVER": (
        "Dotted path of a function given each batch of ended entries (a queryset) before deletion."
    ),
    "SAMPLE_RETENTION": (
        "Seconds each queue's per-minute history (charts, CSV and JSON export) is kept."
    ),
    "METRICS_TOKEN": (
        "Bearer token the Prometheus endpoint requires; None: only logged-in staff may read it."
    ),
}

IMPORT_STRINGS = frozenset({"STORE"})


class QueueSettings:
    """Attribute access to TICKETQUEUE with defaults; cached until the setting changes."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        return dict(getattr(settings, "TICKETQUEUE", {}) or {})

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid ticketqueue setting: {name!r}")
        if name not in self._cache:
            value = self.user_settings.get(name, DEFAULTS[name])
            if name in IMPORT_STRINGS and isinstance(value, str):
                value = import_string(value)
            self._cache[name] = value
        return self._cache[name]

    def reload(self) -> None:
        self._cache.clear()


queue_settings = QueueSettings()

#: Heartbeats a connected client may miss (late, throttled in a background tab, lost on a
#: flaky network) before its waiting entry counts as unseen.
GRACE_HEARTBEATS = 3


#: False in a test run (set by the ``ticketqueue.testing`` pytest plugin): the embedded ticker
#: does not start, whatever ``EMBEDDED_TICKER`` says (no thread ticks behind the tests' backs).
embedded_ticker_allowed = True


def embedded_ticker_on() -> bool:
    """Whether the web process ticks its queues itself: ``EMBEDDED_TICKER``, where ``'auto'``
    (the default) means yes with an in-process store, whose line no other process can tick."""
    value = queue_settings.EMBEDDED_TICKER
    if value == "auto":
        return bool(getattr(queue_settings.STORE, "in_process", False))
    return bool(value)


def min_disconnect_grace() -> float:
    """The shortest disconnect grace a queue may have: a grace shorter than a few heartbeats
    would abandon people whose sockets are open (three heartbeats: 75 s at the defaults)."""
    return GRACE_HEARTBEATS * float(queue_settings.HEARTBEAT_INTERVAL)


def on_change(*names: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Run the decorated function (it takes nothing) whenever one of these Django settings
    changes (a test's ``override_settings``): how every module drops what it made from them::

        @on_change("TICKETQUEUE")
        def _forget() -> None: ...
    """

    def register(forget: Callable[[], None]) -> Callable[[], None]:
        def receiver(*, setting: str, **kwargs: Any) -> None:
            if setting in names:
                forget()

        uid = f"{forget.__module__}.{forget.__qualname__}"
        setting_changed.connect(receiver, weak=False, dispatch_uid=uid)
        return forget

    return register


@on_change("TICKETQUEUE", "SECRET_KEY")
def _reload() -> None:
    queue_settings.reload()
    from . import store

    store.reset_store()
