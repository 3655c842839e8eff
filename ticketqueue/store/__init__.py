"""The hot-state store: the contract (``base``) and its backends (``memory``, ``redis``).

``get_store()`` returns the one store instance configured by ``TICKETQUEUE["STORE"]``.
"""

from __future__ import annotations

import threading

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
    "get_store",
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
