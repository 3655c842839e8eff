"""Who has a live connection to a queue: every queue socket reports its connections (through
``services.open_connections``, ``heartbeats`` and ``disconnect``), the notifier and the
admin ask. Kept by the store's presence companion (``store.companions.Presence``): in Redis with
RedisStore, in this process with MemoryStore.

The sockets' side (cheap, synchronous, one Redis round trip each)::

    presence.mark_connected(queue_id, identity)      # on connect; every tab counts once
    presence.mark_connected_many(queue_id, identities)  # many connects at once (a storm)
    presence.refresh(queue_id, identity)             # on each heartbeat of that connection
    presence.refresh_many(queue_id, identities)      # a socket process's heartbeats, batched
    presence.mark_disconnected(queue_id, identity)   # on disconnect

The tick asks ``connected`` (who to notify instead of telling their socket) and ``away`` (when
an admitted person's last connection went: the pass idle grace counts from it).
``queue_id`` is ``Queue.store_id`` (the primary key as a string). A connection counts as live
until ``PRESENCE_TIMEOUT`` seconds pass without a connect or refresh of its identity, so the
sockets of a server that crashed stop counting without anyone calling mark_disconnected.
"""

from __future__ import annotations

from collections.abc import Iterable

from .store import get_store
from .store.companions import Presence

__all__ = [
    "away",
    "connected",
    "is_connected",
    "mark_connected",
    "mark_connected_many",
    "mark_disconnected",
    "refresh",
    "refresh_many",
]


def _now() -> float:
    from . import services

    return services.clock()


def _timeout() -> float:
    from .conf import queue_settings

    return float(queue_settings.PRESENCE_TIMEOUT)


def _presence() -> Presence:
    return get_store().presence


def mark_connected(queue_id: str, identity: str, now: float | None = None) -> None:
    """One more live connection (tab, device) of ``identity`` to the queue."""
    _presence().connect_many(str(queue_id), [identity], _now() if now is None else now)


def mark_connected_many(queue_id: str, identities: Iterable[str], now: float | None = None) -> None:
    """One more live connection for each of these (an identity twice: two), in one round
    trip: a socket process's connects of the last moment."""
    _presence().connect_many(str(queue_id), list(identities), _now() if now is None else now)


def refresh(queue_id: str, identity: str, now: float | None = None) -> None:
    """The identity's connection is still there (call on its heartbeats)."""
    _presence().refresh_many(str(queue_id), [identity], _now() if now is None else now)


def refresh_many(queue_id: str, identities: Iterable[str], now: float | None = None) -> None:
    """These identities' connections are still there: one round trip for a socket process's
    heartbeats of the last moment."""
    _presence().refresh_many(str(queue_id), list(identities), _now() if now is None else now)


def mark_disconnected(queue_id: str, identity: str, now: float | None = None) -> None:
    """One connection of ``identity`` closed; it stays connected while others remain."""
    _presence().disconnect(str(queue_id), identity, _now() if now is None else now)


def connected(queue_id: str, identities: Iterable[str], now: float | None = None) -> set[str]:
    """The identities among these with a live connection to the queue (one round trip)."""
    since = (_now() if now is None else now) - _timeout()
    return _presence().connected(str(queue_id), list(dict.fromkeys(identities)), since)


def away(
    queue_id: str, identities: Iterable[str], now: float | None = None
) -> dict[str, float | None]:
    """The identities among these with no live connection, each with when it was last there
    (its last connection closed or went quiet); None when it never connected or that was
    too long ago to remember. One round trip."""
    since = (_now() if now is None else now) - _timeout()
    return _presence().away(str(queue_id), list(dict.fromkeys(identities)), since)


def is_connected(queue_id: str, identity: str, now: float | None = None) -> bool:
    return identity in connected(queue_id, [identity], now)
