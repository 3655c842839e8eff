"""RedisStore's broadcast (``companions.Broadcast``): Redis pub/sub on the store's own Redis.

Publishing uses the store's client. Each event loop's ``Subscriber`` holds one pub/sub
connection for all its channels (one per socket process, named ``ticketqueue-live-<pid>-...``
in CLIENT LIST); each ``Listener`` holds its own (the purchase gate's, named
``ticketqueue-passes-<pid>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable
from typing import Any

from ..core import StoreUnreachable
from .companions import Broadcast, Deliver, Heard, Listener, Subscriber

__all__ = ["RedisBroadcast", "ended_passes_channel", "live_channel"]

log = logging.getLogger("ticketqueue.live")


def live_channel(prefix: str, queue_id: str) -> str:
    """The channel of a queue's live messages (the join script publishes on it too)."""
    return f"{prefix}:live:{queue_id}"


def ended_passes_channel(prefix: str) -> str:
    return f"{prefix}:passes:ended"


class RedisBroadcast(Broadcast):
    def __init__(self, client: Any, url: str, prefix: str) -> None:
        self.client = client
        self.url = url
        self.prefix = prefix

    def live_channel(self, queue_id: str) -> str:
        return live_channel(self.prefix, queue_id)

    def ended_passes_channel(self) -> str:
        return ended_passes_channel(self.prefix)

    def publish(self, channel: str, payload: bytes) -> None:
        import redis

        try:
            self.client.publish(channel, payload)
        except redis.RedisError as exc:
            raise StoreUnreachable() from exc

    def subscriber(self, deliver: Deliver) -> Subscriber:
        return RedisSubscriber(deliver, self.url)

    def listen(self, channel: str) -> Listener:
        return RedisListener(self.url, channel)


class RedisListener(Listener):
    def __init__(self, url: str, channel: str) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No silent retries: a dropped connection must surface (as StoreUnreachable), so the
        # reader learns that messages may have been lost. Health checks find a half-open
        # connection within seconds.
        self._client = redis.Redis.from_url(
            url,
            client_name=f"ticketqueue-passes-{os.getpid()}",
            retry=Retry(NoBackoff(), 0),
            health_check_interval=5,
            socket_keepalive=True,
            socket_connect_timeout=2,
        )
        self._pubsub = self._client.pubsub()
        try:
            self._pubsub.subscribe(channel)
        except redis.RedisError as exc:
            self.close()
            raise StoreUnreachable() from exc

    def get(self, timeout: float) -> Heard | None:
        import redis

        try:
            message = self._pubsub.get_message(timeout=timeout)
        except redis.RedisError as exc:
            raise StoreUnreachable() from exc
        if message is None:
            return None
        if message["type"] == "subscribe":
            # The first subscription, or redis-py subscribed again after a reconnect: either
            # way, what was published before this point was not heard.
            return ("subscribed", None)
        if message["type"] == "message":
            return ("message", message["data"])
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection
            self._pubsub.close()
        self._client.close()


class RedisSubscriber(Subscriber):
    """One Redis pub/sub connection per event loop, whatever the number of queues and sockets.

    A dropped connection is made again with backoff and every channel subscribed again; since
    messages published meanwhile are lost, ``deliver`` hears (None, None).
    """

    def __init__(self, deliver: Deliver, url: str) -> None:
        self.deliver = deliver
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
        # lost, so the subscriber's owner must hear of it.
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
