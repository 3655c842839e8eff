"""The hot-state store: the contract (``base``) and its backends (``memory``, ``redis``).

``get_store()`` returns the one store instance configured by ``TICKETQUEUE["STORE"]``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from .base import (
    ActiveRecord,
    Admission,
    Change,
    Counts,
    Departures,
    DeviceBinding,
    Joined,
    LimitHit,
    LimitResult,
    Located,
    Placement,
    QueueConfig,
    QueueStore,
    StoreDump,
    WaitingRecord,
    live_channel,
)

__all__ = [
    "ActiveRecord",
    "Admission",
    "Change",
    "Counts",
    "Departures",
    "DeviceBinding",
    "Joined",
    "LimitHit",
    "LimitResult",
    "Located",
    "Placement",
    "QueueConfig",
    "QueueStore",
    "StoreDump",
    "WaitingRecord",
    "StoreCompanion",
    "get_store",
    "live_channel",
    "reset_store",
]

_store: QueueStore | None = None
_lock = threading.Lock()


def get_store() -> QueueStore:
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                from ..conf import queue_settings

                backend = queue_settings.STORE
                _store = backend.from_settings() if hasattr(backend, "from_settings") else backend()
    return _store


def reset_store() -> None:
    """Forget the store instance (settings changed, or a test wants a fresh one)."""
    global _store
    with _lock:
        old, _store = _store, None
    if old is not None:
        old.disconnect()


T = TypeVar("T")


class StoreCompanion(Generic[T]):
    """Something made from the configured store (presence, counters), made again when the
    store is replaced: ``presence = StoreCompanion(make)``, then ``presence()``."""

    def __init__(self, make: Callable[[QueueStore], T]) -> None:
        self._make = make
        self._made: tuple[QueueStore, T] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        store = get_store()
        made = self._made
        if made is None or made[0] is not store:
            with self._lock:
                made = self._made
                if made is None or made[0] is not store:
                    made = self._made = (store, self._make(store))
        return made[1]

    def reset(self) -> None:
        with self._lock:
            self._made = None
