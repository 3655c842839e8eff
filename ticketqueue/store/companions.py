"""The companion contract: shared state kept beside the queues, by the same backend as the
line itself. Every store hands out its five as attributes (set in its ``__init__``):

- ``store.presence``: who has a live connection to a queue (``ticketqueue.presence``);
- ``store.leases``: whose tick holds a queue, with a fencing token (``ticketqueue.ticker``);
- ``store.counters``: per-queue counters every process adds to (``ticketqueue.metrics``);
- ``store.claims``: at most one notification per admission and channel
  (``ticketqueue.notifications``);
- ``store.broadcast``: messages to every process that listens: a queue's live updates to the
  socket processes (``ticketqueue.live.transport``), the passes that ended to every purchase
  gate (``ticketqueue.revocation``).

MemoryStore's live in this process (``memory_companions``), RedisStore's in the queue's hash
slot of its Redis (``redis_companions``); tests/store/test_companions.py runs both. Times
given as ``now`` and ``since`` are the services' clock; time to live is real time.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Literal

__all__ = [
    "Broadcast",
    "Claims",
    "Counters",
    "Deliver",
    "Heard",
    "Leases",
    "Listener",
    "Presence",
    "Subscriber",
]


class Presence(abc.ABC):
    """Open connections per identity, and when each identity was last there."""

    @abc.abstractmethod
    def connect_many(self, queue_id: str, identities: Sequence[str], now: float) -> None:
        """One more open connection for each of these (an identity twice: two), seen now."""

    @abc.abstractmethod
    def refresh_many(self, queue_id: str, identities: Sequence[str], now: float) -> None:
        """These identities' connections are still there: seen now."""

    @abc.abstractmethod
    def disconnect(self, queue_id: str, identity: str, now: float) -> None:
        """One connection of ``identity`` closed; at its last, it was last there ``now``."""

    @abc.abstractmethod
    def connected(self, queue_id: str, identities: Sequence[str], since: float) -> set[str]:
        """Those of ``identities`` with an open connection seen at or after ``since``."""

    @abc.abstractmethod
    def away(
        self, queue_id: str, identities: Sequence[str], since: float
    ) -> dict[str, float | None]:
        """The others, each with when it was last seen (None: never, or long forgotten)."""


class Leases(abc.ABC):
    """A lock per queue with a time to live, and a fencing token that grows with every lease
    taken: a holder that stalled past its lease learns it when it renews."""

    @abc.abstractmethod
    def acquire(self, queue_id: str, owner: str, ttl: float) -> int | None:
        """Take the lease for ``ttl`` seconds (or take it again: ``owner`` holds it); the new
        token, or None while another owner holds it."""

    @abc.abstractmethod
    def renew(self, queue_id: str, owner: str, token: int, ttl: float) -> bool:
        """Extend the lease by ``ttl``: False when it is not ``owner``'s, or ``token`` is not
        the newest (taken over meanwhile)."""

    @abc.abstractmethod
    def release(self, queue_id: str, owner: str) -> None:
        """Free the lease if ``owner`` holds it (a stale holder's release frees nothing)."""

    @abc.abstractmethod
    def token(self, queue_id: str) -> int:
        """The newest token given for the queue (0: none)."""


class Counters(abc.ABC):
    """Named per-queue counters that only grow."""

    @abc.abstractmethod
    def add(self, queue_id: str, name: str, n: int) -> None: ...

    @abc.abstractmethod
    def read(self, queue_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """queue id -> {counter: value} (counters never added to are left out)."""


class Claims(abc.ABC):
    """At most one claim per (queue, channel, seq) while it lasts."""

    @abc.abstractmethod
    def claim(self, queue_id: str, channel: str, seqs: Sequence[int], ttl: float) -> set[int]:
        """The seqs not claimed on ``channel`` yet, now claimed for ``ttl`` seconds."""

    @abc.abstractmethod
    def unclaim(self, queue_id: str, channel: str, seqs: Sequence[int]) -> None:
        """Give these claims back (their send failed and will be tried again)."""


#: Called in the subscriber's event loop with (channel, payload) for every message, and with
#: (None, None) when the subscription was made again and messages may have been lost.
Deliver = Callable[[str | None, bytes | None], None]

#: What a ``Listener`` heard: ("subscribed", None) each time its subscription is (re)made
#: (what was published before is not heard), ("message", payload) for a message.
Heard = tuple[Literal["subscribed", "message"], bytes | None]


class Subscriber(abc.ABC):
    """One event loop's subscriptions, all delivered to one ``Deliver``; made by
    ``Broadcast.subscriber`` inside that loop. A lost connection is made again by itself (and
    reported to ``Deliver`` as (None, None))."""

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Listen to ``channel``; returns once a message published from now on is delivered."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class Listener(abc.ABC):
    """One channel, read by one thread. A lost connection raises StoreUnreachable from
    ``get``: the reader decides how to go on (``Broadcast.listen`` again)."""

    @abc.abstractmethod
    def get(self, timeout: float) -> Heard | None:
        """The next thing heard, or None when ``timeout`` seconds pass with nothing."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Broadcast(abc.ABC):
    """Fire-and-forget messages to every process listening on a channel; a process that is
    not listening when a message is published never hears it."""

    @abc.abstractmethod
    def live_channel(self, queue_id: str) -> str:
        """The channel that carries a queue's live messages to every socket process."""

    @abc.abstractmethod
    def ended_passes_channel(self) -> str:
        """The channel that tells every purchase gate of the passes that ended."""

    @abc.abstractmethod
    def publish(self, channel: str, payload: bytes) -> None:
        """Send ``payload`` to every listener of ``channel`` (none: nothing happens). Thread
        safe; raises StoreUnreachable when it cannot be sent."""

    @abc.abstractmethod
    def subscriber(self, deliver: Deliver) -> Subscriber:
        """A new set of subscriptions for the running event loop."""

    @abc.abstractmethod
    def listen(self, channel: str) -> Listener:
        """A new subscription to ``channel`` for one reading thread."""
