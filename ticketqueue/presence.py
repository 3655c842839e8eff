"""Who has a live connection to a queue: every queue socket reports its connections (through
``services.connect``, ``heartbeat(connected=True)`` and ``disconnect``), the notifier and the
admin ask. Kept in Redis with RedisStore, else in memory.

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

import json
import threading
from collections.abc import Iterable
from typing import Any

from .store import StoreCompanion

__all__ = [
    "away",
    "connected",
    "is_connected",
    "mark_connected",
    "mark_connected_many",
    "mark_disconnected",
    "refresh",
    "refresh_many",
    "reset",
]


def _now() -> float:
    from . import services

    return services.clock()


def _timeout() -> float:
    from .conf import queue_settings

    return float(queue_settings.PRESENCE_TIMEOUT)


class _MemoryPresence:
    """The in-process backend (MemoryStore: one process holds every connection)."""

    def __init__(self) -> None:
        self._live: dict[tuple[str, str], list[float]] = {}  # -> [connections, last seen]
        self._mutex = threading.Lock()

    def connect(self, queue_id: str, identity: str, now: float) -> None:
        self.connect_many(queue_id, [identity], now)

    def connect_many(self, queue_id: str, identities: list[str], now: float) -> None:
        with self._mutex:
            for identity in identities:
                record = self._live.setdefault((queue_id, identity), [0, now])
                record[0] += 1
                record[1] = now

    def refresh(self, queue_id: str, identity: str, now: float) -> None:
        self.refresh_many(queue_id, [identity], now)

    def refresh_many(self, queue_id: str, identities: list[str], now: float) -> None:
        with self._mutex:
            for identity in identities:
                record = self._live.get((queue_id, identity))
                if record:
                    record[1] = now

    def disconnect(self, queue_id: str, identity: str, now: float) -> None:
        with self._mutex:
            record = self._live.get((queue_id, identity))
            if record:
                record[0] = max(0, record[0] - 1)
                if record[0] == 0:
                    record[1] = now  # gone since now (the pass idle grace counts from here)

    def connected(self, queue_id: str, identities: list[str], since: float) -> set[str]:
        with self._mutex:
            found = set()
            for identity in identities:
                record = self._live.get((queue_id, identity))
                if record and record[0] > 0 and record[1] >= since:
                    found.add(identity)
            return found

    def away(self, queue_id: str, identities: list[str], since: float) -> dict[str, float | None]:
        with self._mutex:
            found: dict[str, float | None] = {}
            for identity in identities:
                record = self._live.get((queue_id, identity))
                if not (record and record[0] > 0 and record[1] >= since):
                    found[identity] = record[1] if record else None
            return found


# KEYS: connections hash, last-seen hash. ARGV: identity, now. At zero the identity's count
# goes and its last-seen becomes now: the moment it was last there.
_DISCONNECT = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return n
"""


# KEYS: connections hash, last-seen hash. ARGV: since, then a JSON array of identities.
# each() visits every identity with (live, last seen), reading both hashes in slices.
_SCAN = """
local ids, since, out = cjson.decode(ARGV[2]), tonumber(ARGV[1]), {}
local function each(visit)
  for i = 1, #ids, 4000 do
    local last = math.min(i + 3999, #ids)
    local counts = redis.call('HMGET', KEYS[1], unpack(ids, i, last))
    local seen = redis.call('HMGET', KEYS[2], unpack(ids, i, last))
    for j = 1, last - i + 1 do
      local live = counts[j] and tonumber(counts[j]) > 0 and seen[j] and tonumber(seen[j]) >= since
      visit(live, seen[j])
    end
  end
end
"""

# One string of '1' (live) and '0' per identity: a tick asking about 1,000 admitted people
# sends one argument and reads back 1,000 bytes, not 2,000 reply elements.
_CONNECTED = (
    _SCAN
    + """
each(function(live) out[#out + 1] = live and '1' or '0' end)
return table.concat(out)
"""
)

# A JSON array: '' for a live identity, else its last-seen time ('-' never seen).
_AWAY = (
    _SCAN
    + """
each(function(live, seen) out[#out + 1] = live and '' or (seen or '-') end)
if #out == 0 then return '[]' end
return cjson.encode(out)
"""
)


class _RedisPresence:
    """Two hashes per queue, in the queue's hash slot: identity -> open connections, and
    identity -> last seen (kept after the last connection closes: when it went). Both expire
    when nobody connects or refreshes for a while (the last-seen hash after a day)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._disconnect = client.register_script(_DISCONNECT)
        self._connected = client.register_script(_CONNECTED)
        self._away = client.register_script(_AWAY)

    def _keys(self, queue_id: str) -> tuple[str, str]:
        return (f"{self.prefix}:{{{queue_id}}}:presence", f"{self.prefix}:{{{queue_id}}}:seen_at")

    def _ttl(self) -> int:
        return max(60, int(_timeout() * 10))

    def connect(self, queue_id: str, identity: str, now: float) -> None:
        self.connect_many(queue_id, [identity], now)

    def connect_many(self, queue_id: str, identities: list[str], now: float) -> None:
        if not identities:
            return
        count, seen = self._keys(queue_id)
        pipe = self.client.pipeline(transaction=False)
        for identity in identities:  # each connection counts, two tabs of one person too
            pipe.hincrby(count, identity, 1)
        pipe.hset(seen, mapping=dict.fromkeys(identities, repr(now)))
        pipe.expire(count, self._ttl())
        pipe.expire(seen, SEEN_TTL)
        pipe.execute()

    def refresh(self, queue_id: str, identity: str, now: float) -> None:
        self.refresh_many(queue_id, [identity], now)

    def refresh_many(self, queue_id: str, identities: list[str], now: float) -> None:
        if not identities:
            return
        count, seen = self._keys(queue_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(seen, mapping=dict.fromkeys(identities, repr(now)))
        pipe.expire(seen, SEEN_TTL)
        pipe.expire(count, self._ttl())
        pipe.execute()

    def disconnect(self, queue_id: str, identity: str, now: float) -> None:
        self._disconnect(keys=list(self._keys(queue_id)), args=[identity, repr(now)])

    def away(self, queue_id: str, identities: list[str], since: float) -> dict[str, float | None]:
        if not identities:
            return {}
        flags = json.loads(
            self._away(
                keys=list(self._keys(queue_id)),
                args=[repr(float(since)), json.dumps(identities, ensure_ascii=False)],
            )
        )
        return {
            identity: (None if flag == "-" else float(flag))
            for identity, flag in zip(identities, flags, strict=True)
            if flag != ""
        }

    def connected(self, queue_id: str, identities: list[str], since: float) -> set[str]:
        if not identities:
            return set()
        flags = self._connected(
            keys=list(self._keys(queue_id)),
            args=[repr(float(since)), json.dumps(identities, ensure_ascii=False)],
        )
        flags = flags.decode() if isinstance(flags, bytes) else str(flags)
        return {identity for identity, flag in zip(identities, flags, strict=True) if flag == "1"}


#: How long a queue's last-seen times outlive its last connection: longer than any pass idle
#: grace a site would set (after that, the grace counts from the admission).
SEEN_TTL = 86_400


def _make_backend(store: Any) -> Any:
    client = getattr(store, "client", None)
    if client is not None and hasattr(client, "register_script"):
        return _RedisPresence(client, getattr(store, "prefix", "tq"))
    return _MemoryPresence()


#: The backend matching the configured store (made again when the store is replaced).
_backend = StoreCompanion(_make_backend)


def reset() -> None:
    """Forget the in-memory backend (tests; a new store gets a new backend anyway)."""
    _backend.reset()


def mark_connected(queue_id: str, identity: str, now: float | None = None) -> None:
    """One more live connection (tab, device) of ``identity`` to the queue."""
    _backend().connect(str(queue_id), identity, _now() if now is None else now)


def mark_connected_many(queue_id: str, identities: Iterable[str], now: float | None = None) -> None:
    """One more live connection for each of these (an identity twice: two), in one round
    trip: a socket process's connects of the last moment."""
    _backend().connect_many(str(queue_id), list(identities), _now() if now is None else now)


def refresh(queue_id: str, identity: str, now: float | None = None) -> None:
    """The identity's connection is still there (call on its heartbeats)."""
    _backend().refresh(str(queue_id), identity, _now() if now is None else now)


def refresh_many(queue_id: str, identities: Iterable[str], now: float | None = None) -> None:
    """These identities' connections are still there: one round trip for a socket process's
    heartbeats of the last moment."""
    _backend().refresh_many(str(queue_id), list(identities), _now() if now is None else now)


def mark_disconnected(queue_id: str, identity: str, now: float | None = None) -> None:
    """One connection of ``identity`` closed; it stays connected while others remain."""
    _backend().disconnect(str(queue_id), identity, _now() if now is None else now)


def connected(queue_id: str, identities: Iterable[str], now: float | None = None) -> set[str]:
    """The identities among these with a live connection to the queue (one round trip)."""
    since = (_now() if now is None else now) - _timeout()
    return _backend().connected(str(queue_id), list(dict.fromkeys(identities)), since)


def away(
    queue_id: str, identities: Iterable[str], now: float | None = None
) -> dict[str, float | None]:
    """The identities among these with no live connection, each with when it was last there
    (its last connection closed or went quiet); None when it never connected or that was
    too long ago to remember. One round trip."""
    since = (_now() if now is None else now) - _timeout()
    return _backend().away(str(queue_id), list(dict.fromkeys(identities)), since)


def is_connected(queue_id: str, identity: str, now: float | None = None) -> bool:
    return identity in connected(queue_id, [identity], now)
