"""MemoryStore's companions (``companions``): in this process, which holds the whole waiting
room. Each is guarded by its own lock: sockets, requests and the embedded ticker share it."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from .companions import (
    Broadcast,
    Claims,
    Counters,
    Deliver,
    Heard,
    Leases,
    Listener,
    Presence,
    Subscriber,
)

__all__ = [
    "MemoryBroadcast",
    "MemoryClaims",
    "MemoryCounters",
    "MemoryLeases",
    "MemoryPresence",
]


class MemoryPresence(Presence):
    def __init__(self) -> None:
        self._live: dict[tuple[str, str], list[float]] = {}  # -> [connections, last seen]
        self._mutex = threading.Lock()

    def connect_many(self, queue_id: str, identities: Sequence[str], now: float) -> None:
        with self._mutex:
            for identity in identities:
                record = self._live.setdefault((queue_id, identity), [0, now])
                record[0] += 1
                record[1] = now

    def refresh_many(self, queue_id: str, identities: Sequence[str], now: float) -> None:
        with self._mutex:
            for identity in identities:
                self._live.setdefault((queue_id, identity), [0, now])[1] = now

    def disconnect(self, queue_id: str, identity: str, now: float) -> None:
        with self._mutex:
            record = self._live.setdefault((queue_id, identity), [0, now])
            record[0] = max(0, record[0] - 1)
            if record[0] == 0:
                record[1] = now  # gone since now (the pass idle grace counts from here)

    def _live_since(self, queue_id: str, identity: str, since: float) -> bool:
        record = self._live.get((queue_id, identity))
        return bool(record and record[0] > 0 and record[1] >= since)

    def connected(self, queue_id: str, identities: Sequence[str], since: float) -> set[str]:
        with self._mutex:
            return {i for i in identities if self._live_since(queue_id, i, since)}

    def away(
        self, queue_id: str, identities: Sequence[str], since: float
    ) -> dict[str, float | None]:
        with self._mutex:
            found: dict[str, float | None] = {}
            for identity in identities:
                if not self._live_since(queue_id, identity, since):
                    record = self._live.get((queue_id, identity))
                    found[identity] = record[1] if record else None
            return found


class MemoryLeases(Leases):
    #: The leases' clock: real time, like Redis's expiry.
    timer: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}  # queue id -> (owner, until)
        self._fence: dict[str, int] = {}
        self._mutex = threading.Lock()

    def _holder(self, queue_id: str) -> str | None:
        held = self._held.get(queue_id)
        return held[0] if held and held[1] > self.timer() else None

    def acquire(self, queue_id: str, owner: str, ttl: float) -> int | None:
        with self._mutex:
            if self._holder(queue_id) not in (None, owner):
                return None
            self._held[queue_id] = (owner, self.timer() + ttl)
            self._fence[queue_id] = token = self._fence.get(queue_id, 0) + 1
            return token

    def renew(self, queue_id: str, owner: str, token: int, ttl: float) -> bool:
        with self._mutex:
            if self._holder(queue_id) != owner or self._fence.get(queue_id) != token:
                return False
            self._held[queue_id] = (owner, self.timer() + ttl)
            return True

    def release(self, queue_id: str, owner: str) -> None:
        with self._mutex:
            if self._holder(queue_id) == owner:
                del self._held[queue_id]

    def token(self, queue_id: str) -> int:
        with self._mutex:
            return self._fence.get(queue_id, 0)


class MemoryCounters(Counters):
    def __init__(self) -> None:
        self._values: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self._mutex = threading.Lock()

    def add(self, queue_id: str, name: str, n: int) -> None:
        with self._mutex:
            self._values[queue_id][name] += n

    def read(self, queue_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        with self._mutex:
            return {q: dict(self._values.get(q, {})) for q in queue_ids}


class MemoryClaims(Claims):
    #: Real time, like Redis's expiry.
    timer: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self._until: dict[tuple[str, str, int], float] = {}
        self._mutex = threading.Lock()

    def claim(self, queue_id: str, channel: str, seqs: Sequence[int], ttl: float) -> set[int]:
        now = self.timer()
        with self._mutex:
            for key in [k for k, until in self._until.items() if until <= now]:
                del self._until[key]
            won = set()
            for seq in seqs:
                if (queue_id, channel, seq) not in self._until:
                    self._until[(queue_id, channel, seq)] = now + ttl
                    won.add(seq)
            return won

    def unclaim(self, queue_id: str, channel: str, seqs: Sequence[int]) -> None:
        with self._mutex:
            for seq in seqs:
                self._until.pop((queue_id, channel, seq), None)


# -- the broadcast: one bus for the whole process -------------------------------------------

#: Hands one message to one subscriber; raises RuntimeError once that subscriber is gone.
_Send = Callable[[str, bytes], None]


class _Bus:
    """Channel -> how to hand a message to each of its subscribers in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[_Send]] = {}

    def add(self, channel: str, send: _Send) -> None:
        with self._lock:
            self._subscribers.setdefault(channel, set()).add(send)

    def discard(self, channel: str, send: _Send) -> None:
        with self._lock:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(send)
                if not subscribers:
                    del self._subscribers[channel]

    def publish(self, channel: str, payload: bytes) -> None:
        with self._lock:
            targets = list(self._subscribers.get(channel, ()))
        for send in targets:
            try:
                send(channel, payload)
            except RuntimeError:  # its event loop is closed: forget it
                self.discard(channel, send)


_BUS = _Bus()


class MemoryBroadcast(Broadcast):
    """Every MemoryBroadcast of the process shares one bus: the process is the whole audience
    (``LIVE_BROADCAST = "local"`` uses one beside a RedisStore, too)."""

    def live_channel(self, queue_id: str) -> str:
        return f"live:{queue_id}"

    def ended_passes_channel(self) -> str:
        return "passes:ended"

    def publish(self, channel: str, payload: bytes) -> None:
        _BUS.publish(channel, payload)

    def subscriber(self, deliver: Deliver) -> Subscriber:
        return _LoopSubscriber(deliver)

    def listen(self, channel: str) -> Listener:
        return _ThreadListener(channel)


class _LoopSubscriber(Subscriber):
    def __init__(self, deliver: Deliver) -> None:
        loop = asyncio.get_running_loop()
        self._send: _Send = lambda channel, payload: loop.call_soon_threadsafe(
            deliver, channel, payload
        )
        self._channels: set[str] = set()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        _BUS.add(channel, self._send)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        _BUS.discard(channel, self._send)

    async def close(self) -> None:
        for channel in list(self._channels):
            await self.unsubscribe(channel)


class _ThreadListener(Listener):
    def __init__(self, channel: str) -> None:
        self._channel = channel
        self._heard: queue.SimpleQueue[Heard] = queue.SimpleQueue()
        self._heard.put(("subscribed", None))
        self._send: _Send = lambda _channel, payload: self._heard.put(("message", payload))
        _BUS.add(channel, self._send)

    def get(self, timeout: float) -> Heard | None:
        try:
            return self._heard.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        _BUS.discard(self._channel, self._send)
