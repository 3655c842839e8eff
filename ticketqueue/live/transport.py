"""How live messages travel from whichever process changed a queue to every socket process:
Redis pub/sub (one channel per queue), or an in-process bus for the one-process embedded default.

Publishing is synchronous and thread-safe (ticks run in Celery workers and threads); subscribing
belongs to one event loop's Hub, which holds one subscription per queue for its whole process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
from collections.abc import Callable
from typing import Any

from ..conf import on_change, queue_settings
from ..store import live_channel

__all__ = [
    "LocalSubscriber",
    "RedisSubscriber",
    "Subscriber",
    "channel_name",
    "make_subscriber",
    "mode",
    "publish",
    "reset",
]

log = logging.getLogger("ticketqueue.live")

#: Called in the hub's loop with (channel, payload) for every message, and with
#: (None, None) when the subscription was re-established and messages may have been lost.
Deliver = Callable[[str | None, bytes | None], None]


def channel_name(queue_id: str) -> str:
    return live_channel(queue_settings.KEY_PREFIX, queue_id)


def mode() -> str:
    """'redis' or 'local': the setting, with 'auto' meaning local exactly when the store's
    state lives in this process (``QueueStore.in_process``: nobody else to tell)."""
    configured = queue_settings.LIVE_BROADCAST
    if configured != "auto":
        return str(configured)
    return "local" if getattr(queue_settings.STORE, "in_process", False) else "redis"


# -- the in-process bus --------------------------------------------------------------------


class _Bus:
    """Channel -> the (loop, deliver) pairs subscribed to it in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[tuple[asyncio.AbstractEventLoop, Deliver]]] = {}

    def add(self, channel: str, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        with self._lock:
            self._subscribers.setdefault(channel, set()).add((loop, deliver))

    def discard(self, channel: str, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        with self._lock:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard((loop, deliver))
                if not subscribers:
                    del self._subscribers[channel]

    def publish(self, channel: str, payload: bytes) -> None:
        with self._lock:
            targets = list(self._subscribers.get(channel, ()))
        for loop, deliver in targets:
            try:
                loop.call_soon_threadsafe(deliver, channel, payload)
            except RuntimeError:  # the loop is closed: forget it
                self.discard(channel, loop, deliver)


_bus = _Bus()

# -- publishing ----------------------------------------------------------------------------

_publisher_lock = threading.Lock()
_publisher: Any = None


def _redis_publisher() -> Any:
    global _publisher
    if _publisher is None:
        with _publisher_lock:
            if _publisher is None:
                import redis

                _publisher = redis.Redis.from_url(queue_settings.REDIS_URL)
    return _publisher


def publish(queue_id: str, payload: bytes) -> None:
    """Send one message to every process subscribed to the queue (none: nothing happens)."""
    channel = channel_name(queue_id)
    if mode() == "redis":
        _redis_publisher().publish(channel, payload)
    else:
        _bus.publish(channel, payload)


def reset() -> None:
    """Forget the publishing client (settings changed)."""
    global _publisher
    with _publisher_lock:
        client, _publisher = _publisher, None
    if client is not None:
        client.close()


on_change("TICKETQUEUE")(reset)

# -- subscribing ---------------------------------------------------------------------------


class Subscriber:
    """One event loop's subscriptions; ``deliver`` runs in that loop."""

    def __init__(self, deliver: Deliver) -> None:
        self.deliver = deliver

    async def subscribe(self, channel: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def unsubscribe(self, channel: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class LocalSubscriber(Subscriber):
    def __init__(self, deliver: Deliver) -> None:
        super().__init__(deliver)
        self._loop = asyncio.get_running_loop()
        self._channels: set[str] = set()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        _bus.add(channel, self._loop, self.deliver)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        _bus.discard(channel, self._loop, self.deliver)

    async def close(self) -> None:
        for channel in list(self._channels):
            await self.unsubscribe(channel)


class RedisSubscriber(Subscriber):
    """One Redis pub/sub connection per process, whatever the number of queues and sockets.

    A dropped connection is re-made with backoff and every channel subscribed again; since
    messages published meanwhile are lost, the hub is told to resync its seats from the store.
    """

    def __init__(self, deliver: Deliver, url: str) -> None:
        super().__init__(deliver)
        self._url = url
        self._channels: set[str] = set()
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._client: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        #: Names the connection in CLIENT LIST: one per socket process.
        self.client_name = f"ticketqueue-live-{os.getpid()}-{id(self):x}"

    async def _connect(self) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.Redis.from_url(self._url, client_name=self.client_name)
        self._pubsub = _pubsub_class()(
            self._client.connection_pool, event_dispatcher=self._client._event_dispatcher
        )
        # redis-py reconnects and subscribes again by itself; what was published meanwhile is
        # lost, so the hub must hear of it.
        self._pubsub.on_reconnect = lambda: self.deliver(None, None)

    async def subscribe(self, channel: str) -> None:
        if self._pubsub is None:
            await self._connect()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel, []).append(waiter)
        self._channels.add(channel)
        await self._pubsub.subscribe(channel)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())
        # Subscribed for real only once Redis confirms: a status read after this point
        # cannot miss a broadcast.
        await waiter

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._closed:
                    return
                log.warning("live subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(delay * (0.5 + random.random()))  # backoff with jitter
                delay = min(delay * 2, 5.0)
                await self._reconnect()
                continue
            delay = 0.1
            if message is None:
                continue
            kind = message["type"]
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            if kind == "message":
                self.deliver(channel, message["data"])
            elif kind == "subscribe":
                for waiter in self._confirmations.pop(channel, []):
                    if not waiter.done():
                        waiter.set_result(None)

    async def _reconnect(self) -> None:
        try:
            await self._dispose()
            await self._connect()
            if self._channels:
                await self._pubsub.subscribe(*self._channels)
        except Exception:
            log.warning("live subscription: reconnect failed", exc_info=True)
            return
        self.deliver(None, None)

    async def _dispose(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        if pubsub is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                await pubsub.aclose()
        if client is not None:
            await client.aclose()

    async def close(self) -> None:
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await reader
        for waiters in self._confirmations.values():
            for waiter in waiters:
                waiter.cancel()
        self._confirmations.clear()
        await self._dispose()


_PUBSUB: Any = None


def _pubsub_class() -> Any:
    global _PUBSUB
    if _PUBSUB is None:
        from redis.asyncio.client import PubSub

        class ReportingPubSub(PubSub):
            """Reports re-connections (redis-py calls ``on_connect`` only for those, to
            subscribe again): what was published meanwhile is lost."""

            on_reconnect: Callable[[], None] | None = None

            async def on_connect(self, connection: Any) -> None:
                await super().on_connect(connection)
                if self.on_reconnect is not None:
                    self.on_reconnect()

        _PUBSUB = ReportingPubSub
    return _PUBSUB


def make_subscriber(deliver: Deliver) -> Subscriber:
    if mode() == "redis":
        return RedisSubscriber(deliver, queue_settings.REDIS_URL)
    return LocalSubscriber(deliver)
