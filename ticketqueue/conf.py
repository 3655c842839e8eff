"""ticketqueue's settings: one ``TICKETQUEUE`` dict, read lazily, with a default for every key.

    TICKETQUEUE = {"STORE": "ticketqueue.store.redis.RedisStore", "REDIS_URL": "redis://..."}
    from ticketqueue.conf import queue_settings; queue_settings.PURCHASE_WINDOW
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

__all__ = ["DEFAULTS", "HELP", "QueueSettings", "queue_settings"]

DEFAULTS: dict[str, Any] = {
    "STORE": "ticketqueue.store.memory.MemoryStore",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "KEY_PREFIX": "tq",
    "PURCHASE_WINDOW": 900,
    "DISCONNECT_GRACE": 1800,
    "TICK_INTERVAL": 1.0,
    "TICK_BATCHES": 1,
    "EMBEDDED_TICKER": False,
    "UPDATE_INTERVAL": 2.0,
    "PASS_ISSUER": "ticketqueue",
    "PASS_ALGORITHM": "HS256",
    "PASS_SECRET": None,
    "PASS_PRIVATE_KEYS": [],
    "PASS_PUBLIC_KEYS": [],
    "STORE_FAILURE": "closed",
}

#: One line per knob; docs/settings.md repeats these.
HELP: dict[str, str] = {
    "STORE": "Dotted path of the store backend class (MemoryStore or RedisStore).",
    "REDIS_URL": "Redis URL the RedisStore connects to.",
    "KEY_PREFIX": "Prefix of every Redis key (keys are PREFIX:{queue id}:...).",
    "PURCHASE_WINDOW": "Default seconds a pass stays valid, for queues that do not set one.",
    "DISCONNECT_GRACE": "Default seconds a waiting entry may go unseen before it is abandoned.",
    "TICK_INTERVAL": "Seconds between ticks of the tick loop (Celery beat ticks each second).",
    "TICK_BATCHES": "Admission batches inside one tick (10 = a batch every 100 ms of a 1 s tick).",
    "EMBEDDED_TICKER": "Run the tick loop in a thread of the web process (embedded default only).",
    "UPDATE_INTERVAL": "Seconds between two queue_update messages to one client (granted is never delayed).",
    "PASS_ISSUER": "The iss claim of passes.",
    "PASS_ALGORITHM": "JWT algorithm of passes: HS256, RS256, ES256 or EdDSA; verification accepts only it.",
    "PASS_SECRET": "HS256 key; default: derived from SECRET_KEY for passes only.",
    "PASS_PRIVATE_KEYS": "Asymmetric signing keys as [{'kid': ..., 'pem': ...}], newest first.",
    "PASS_PUBLIC_KEYS": "Extra verifying keys [{'kid': ..., 'pem': ...}] kept during rotation.",
    "STORE_FAILURE": "'closed' refuses passes while the store is unreachable; 'open' accepts valid signatures.",
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


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting in ("TICKETQUEUE", "SECRET_KEY"):
        queue_settings.reload()
        from . import store

        store.reset_store()


setting_changed.connect(_reload)
