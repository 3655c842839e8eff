"""The waiting room's WebSocket consumer: ``ws/queue/<slug>/``, speaking docs/protocol.md.

It reads the store only on connect, on the client's own messages and on the hub's spread-out
resyncs; ticks reach it as one in-memory broadcast per process (``ticketqueue.live``).
"""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import InstanceSessionWrapper

from .identity import identity_for
from .limits import address_of_scope
from .live.asgi import ready_for_a_burst
from .live.connection import QueueSocket, accept_message, device_of_scope, scope_cookies
from .live.headroom import get_headroom, refuse

__all__ = ["QueueConsumer"]


def _socket_send(send: Any) -> Any:
    """The ASGI send under channels' session middleware, for the frames the hub writes.

    The middleware wraps send to save the session with an HTTP response; a socket's frames
    never need that, and its checks on every frame add up over 10,000 sockets a tick.
    """
    wrapper = getattr(send, "__self__", None)
    if isinstance(wrapper, InstanceSessionWrapper):
        return _socket_send(wrapper.real_send)
    return send


class QueueConsumer(AsyncWebsocketConsumer):
    """One socket of one identity in one queue, under Channels' routing and middleware.

    The identity is the logged-in user (``scope["user"]``), else the signed visitor cookie;
    everything after the handshake is ``QueueSocket``'s (``ticketqueue.live.connection``),
    shared with the lean application (``ticketqueue.live.asgi``).
    """

    #: Broadcasts come from the hub's one subscription per process, not a channel layer
    #: (a channel per socket would cost Redis work per socket per message).
    channel_layer_alias = None
    #: No channel-layer groups: channels' websocket_connect/disconnect iterate this.
    groups: list[str] = []

    socket: QueueSocket
    #: Whether this socket counts in the process's headroom (given back on disconnect).
    held = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # channels' __init__ only gives each instance its own empty ``groups`` list.
        self.socket = QueueSocket()

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> Any:
        ready_for_a_burst()  # as QueueSocketApp() does: before the process's first socket
        return super().as_asgi(**initkwargs)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # One socket, one task: without a channel layer there is nothing to multiplex, and
        # channels' await_many_dispatch would spend a second task (memory) on every socket.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            self._give_back()  # also when the task is cancelled before a disconnect

    async def dispatch(self, message: dict[str, Any]) -> None:
        # channels' dispatch closes stale DB connections around every frame (a thread hop per
        # heartbeat); the store and row work runs through database_sync_to_async, which does
        # that where it matters.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        if not get_headroom().take():
            # Full: turned away at the handshake; the sockets this process holds go on.
            await refuse(self.scope, _socket_send(self.base_send))
            raise StopConsumer()
        self.held = True
        scope = self.scope
        accept = accept_message(scope)
        await self.accept(subprotocol=accept.get("subprotocol"))
        identity = identity_for(scope.get("user"), scope_cookies(scope))
        slug = scope["url_route"]["kwargs"]["slug"]
        await self.socket.open(
            _socket_send(self.base_send),
            slug,
            identity,
            address_of_scope(scope),
            device_of_scope(scope),
            follows="subprotocol" in accept,
        )

    async def disconnect(self, code: int) -> None:
        self._give_back()
        await self.socket.close()

    def _give_back(self) -> None:
        if self.held:
            self.held = False
            get_headroom().give_back()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.socket.receive(text_data, bytes_data)
