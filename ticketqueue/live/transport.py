"""How live messages travel from whichever process changed a queue to every socket process:
the store's broadcast (``store.broadcast``: Redis pub/sub with RedisStore, this process with
MemoryStore), or this process only when ``LIVE_BROADCAST`` is ``"local"``.

Publishing is synchronous and thread-safe (ticks run in Celery workers and threads); subscribing
belongs to one event loop's Hub, which holds one subscription per queue for its whole process.
"""

from __future__ import annotations

from ..conf import queue_settings
from ..store import get_store
from ..store.companions import Broadcast, Deliver, Subscriber
from ..store.memory_companions import MemoryBroadcast

__all__ = ["broadcast", "channel_name", "make_subscriber", "publish"]

_LOCAL = MemoryBroadcast()


def broadcast() -> Broadcast:
    """``LIVE_BROADCAST``: the store's broadcast ('store'), or this process only ('local')."""
    return _LOCAL if queue_settings.LIVE_BROADCAST == "local" else get_store().broadcast


def channel_name(queue_id: str) -> str:
    return broadcast().live_channel(queue_id)


def publish(queue_id: str, payload: bytes) -> None:
    """Send one message to every process subscribed to the queue (none: nothing happens)."""
    carrier = broadcast()
    carrier.publish(carrier.live_channel(queue_id), payload)


def make_subscriber(deliver: Deliver) -> Subscriber:
    """A subscriber for the running event loop (a Hub's)."""
    return broadcast().subscriber(deliver)
