"""RedisStore's broadcast (``companions.Broadcast``): Redis pub/sub on the store's own Redis.

Publishing uses the store's client. Each event loop's ``Subscriber`` holds one pub/sub
connection for all its channels (one per socket process, named ``ticketqueue-live-<pid>-...``
in CLIENT LIST); each ``Listener`` holds its own (the purchase gate's, named
``ticketqueue-passes-<pid>``).

On a Redis Cluster the pub/sub is sharded (SPUBLISH/SSUBSCRIBE, Redis 7): a queue's channel is
in the queue's hash slot, so its messages go to the one node (and its replicas) that holds the
queue, not to every node over the cluster bus. A subscriber then holds one connection per node
it listens to.
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
from .redis_cluster import cluster_client, node_url

__all__ = ["RedisBroadcast", "RedisClusterSubscriber", "ended_passes_channel", "live_channel"]

log = logging.getLogger("ticketqueue.live")


def live_channel(prefix: str, queue_id: str) -> str:
    """The channel of a queue's live messages (the join script publishes on it too)."""
    return f"{prefix}:{{{queue_id}}}:live"


def ended_passes_channel(prefix: str) -> str:
    return f"{prefix}:passes:ended"


class RedisBroadcast(Broadcast):
    def __init__(self, client: Any, url: str, prefix: str, cluster: bool = False) -> None:
        self.client = client
        self.url = url
        self.prefix = prefix
        self.cluster = cluster

    def live_channel(self, queue_id: str) -> str:
        return live_channel(self.prefix, queue_id)

    def ended_passes_channel(self) -> str:
        return ended_passes_channel(self.prefix)

    def publish(self, channel: str, payload: bytes) -> None:
        import redis

        try:
            if self.cluster:
                self.client.spublish(channel, payload)
            else:
                self.client.publish(channel, payload)
        except redis.RedisError as exc:
            raise StoreUnreachable() from exc

    def subscriber(self, deliver: Deliver) -> Subscriber:
        if self.cluster:
            return RedisClusterSubscriber(deliver, self.url)
        return RedisSubscriber(deliver, self.url)

    def listen(self, channel: str) -> Listener:
        if not self.cluster:
            return RedisListener(self.url, channel)
        import redis

        try:
            # A new listener follows a failover or a moved slot: read the slot map afresh.
            self.client.nodes_manager.initialize()
            node = self.client.get_node_from_key(channel)
        except redis.RedisError as exc:
            raise StoreUnreachable() from exc
        return RedisListener(node_url(self.url, node.name), channel, sharded=True)


class RedisListener(Listener):
    def __init__(self, url: str, channel: str, sharded: bool = False) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._sharded = sharded
        self._channel = channel

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
            if sharded:
                self._pubsub.ssubscribe(channel)
            else:
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
        kind = message["type"]
        if kind in ("subscribe", "ssubscribe"):
            # The first subscription, or redis-py subscribed again after a reconnect: either
            # way, what was published before this point was not heard.
            return ("subscribed", None)
        if kind in ("message", "smessage"):
            return ("message", message["data"])
        if kind == "sunsubscribe":
            # The node let the slot go (a failover, a resharding): listen again where it went.
            raise StoreUnreachable(f"{self._channel} moved to another node")
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection
            self._pubsub.close()
        self._client.close()


class RedisSubscriber(Subscriber):
    """One Redis pub/sub connection per event loop, whatever the number of queues and sockets.

    A dropped connection is made again with backoff and every channel subscribed again; since
    messages published meanwhile are lost, ``deliver`` hears (None, None).

    ``sharded`` (one node of a cluster, for ``RedisClusterSubscriber``): SSUBSCRIBE, and a lost
    connection or a channel the node let go is not made again here but handed to ``on_lost``,
    since the slot may now live on another node.
    """

    def __init__(
        self,
        deliver: Deliver,
        url: str,
        sharded: bool = False,
        on_lost: Callable[[set[str]], None] | None = None,
    ) -> None:
        self.deliver = deliver
        self._url = url
        self._sharded = sharded
        self._on_lost = on_lost
        self._channels: set[str] = set()
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._client: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()
        self._closed = False
        #: Names the connection in CLIENT LIST: one per socket process (and node).
        self.client_name = f"ticketqueue-live-{os.getpid()}-{id(self):x}"

    @property
    def channels(self) -> set[str]:
        return self._channels

    async def _connect(self) -> None:
        import redis.asyncio as aioredis

        if self._sharded:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # No silent reconnection: the owner moves the channels to wherever they live now.
            self._client = aioredis.Redis.from_url(
                self._url, client_name=self.client_name, retry=Retry(NoBackoff(), 0)
            )
        else:
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
        try:
            # One command at a time: redis-py's PubSub opens its connection on the first, and
            # two first commands at once would open two and read only the second.
            async with self._sending:
                if self._sharded:
                    await self._pubsub.ssubscribe(channel)
                else:
                    await self._pubsub.subscribe(channel)
        except BaseException:
            self._channels.discard(channel)
            self._confirmations.pop(channel, None)
            raise
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())
        # Subscribed for real only once Redis confirms: a status read after this point
        # cannot miss a broadcast.
        await waiter

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._pubsub is not None:
            async with self._sending:
                if self._sharded:
                    await self._pubsub.sunsubscribe(channel)
                else:
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
                if self._sharded:  # the cluster subscriber finds where the channels went
                    log.warning("live subscription to a cluster node lost", exc_info=True)
                    await self._lose(set(self._channels))
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
            if kind in ("message", "smessage"):
                self.deliver(channel, message["data"])
            elif kind in ("subscribe", "ssubscribe"):
                for waiter in self._confirmations.pop(channel, []):
                    if not waiter.done():
                        waiter.set_result(None)
            elif kind == "sunsubscribe" and channel in self._channels:
                # Not asked for: the node let the slot go (a failover, a resharding).
                self._channels.discard(channel)
                if self._on_lost is not None:
                    self._on_lost({channel})

    async def _lose(self, channels: set[str]) -> None:
        """The connection is gone: hand every channel to the owner, fail who still waits."""
        self._channels.clear()
        for waiters in self._confirmations.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(StoreUnreachable())
                    waiter.exception()  # retrieved: the subscriber raises it again
        self._confirmations.clear()
        await self._dispose()
        if self._on_lost is not None and channels:
            self._on_lost(channels)

    async def _reconnect(self) -> None:
        try:
            async with self._sending:
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


class RedisClusterSubscriber(Subscriber):
    """Sharded pub/sub on a Redis Cluster: one ``RedisSubscriber`` per node that holds a
    subscribed channel's slot.

    When a node's connection drops or it lets a slot go, its channels are subscribed again at
    their owners in a freshly read slot map, with backoff until the cluster answers (a failover
    takes a few seconds); then ``deliver`` hears (None, None), as messages may have been lost.
    """

    def __init__(self, deliver: Deliver, url: str) -> None:
        self.deliver = deliver
        self._url = url
        self._cluster: Any = None  # redis.asyncio.RedisCluster, for its slot map only
        self._reading_slots = asyncio.Lock()
        self._nodes: dict[str, RedisSubscriber] = {}  # node "host:port" -> its subscriber
        self._lost: set[str] = set()
        self._wanted: set[str] = set()
        self._rerouting: asyncio.Task[None] | None = None
        self._closed = False

    async def _owner(self, channel: str, refresh: bool = False) -> RedisSubscriber:
        async with self._reading_slots:  # the first queues' subscriptions come all at once
            if self._cluster is None:
                cluster = cluster_client(self._url, asyncio=True)
                await cluster.initialize()
                self._cluster = cluster
            elif refresh:
                await self._cluster.nodes_manager.initialize()
        name = self._cluster.get_node_from_key(channel).name
        node = self._nodes.get(name)
        if node is None:
            node = RedisSubscriber(
                self.deliver, node_url(self._url, name), sharded=True, on_lost=self._on_lost
            )
            self._nodes[name] = node
        return node

    async def subscribe(self, channel: str) -> None:
        self._wanted.add(channel)
        try:
            await (await self._owner(channel)).subscribe(channel)
        except BaseException:
            self._wanted.discard(channel)
            raise

    async def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._lost.discard(channel)
        for node in self._nodes.values():
            if channel in node.channels:
                await node.unsubscribe(channel)

    def _on_lost(self, channels: set[str]) -> None:
        self._lost |= channels & self._wanted
        if self._lost and not self._closed and (self._rerouting is None or self._rerouting.done()):
            self._rerouting = asyncio.get_running_loop().create_task(self._reroute())

    async def _reroute(self) -> None:
        delay = 0.1
        while self._lost and not self._closed:
            await asyncio.sleep(delay * (0.5 + random.random()))  # backoff with jitter
            delay = min(delay * 2, 5.0)
            try:
                for channel in sorted(self._lost):
                    node = await self._owner(channel, refresh=True)
                    if channel in self._wanted:
                        await node.subscribe(channel)
                    self._lost.discard(channel)
            except Exception:
                log.warning("live subscription: cluster not ready; retrying", exc_info=True)
                continue
            for name, node in list(self._nodes.items()):
                if not node.channels:
                    del self._nodes[name]
                    await node.close()
            self.deliver(None, None)

    async def close(self) -> None:
        self._closed = True
        rerouting, self._rerouting = self._rerouting, None
        if rerouting is not None:
            rerouting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await rerouting
        for node in self._nodes.values():
            await node.close()
        self._nodes.clear()
        if self._cluster is not None:
            await self._cluster.aclose()


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
