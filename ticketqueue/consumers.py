"""The waiting room's WebSocket consumer: ``ws/queue/<slug>/``, speaking docs/protocol.md.

It reads the store only on connect, on the client's own messages and on the hub's spread-out
resyncs; ticks reach it as one in-memory broadcast per process (``ticketqueue.live``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import InstanceSessionWrapper
from django.http.cookie import parse_cookie

from . import services
from .conf import queue_settings
from .core import EntryNotFound, QueueNotFound, QueueUnavailable, TicketQueueError
from .identity import identity_for
from .live import Seat, get_hub
from .live.protocol import (
    CLOSE_IDENTITY_REQUIRED,
    CLOSE_QUEUE_NOT_FOUND,
    IdentityRequired,
    InvalidMessage,
    MessageBucket,
    RateLimited,
    error_frame,
    parse_client_message,
)

__all__ = ["QueueConsumer"]

log = logging.getLogger("ticketqueue.live")


def _in_thread(func: Any) -> Any:
    # Store and row work runs in the thread pool, not the one thread Django's sync code
    # shares: thousands of sockets reconnecting at once must not queue behind each other.
    return database_sync_to_async(func, thread_sensitive=False)


def _cookies(scope: dict[str, Any]) -> dict[str, str]:
    if "cookies" in scope:  # set by channels' CookieMiddleware (AuthMiddlewareStack)
        return scope["cookies"]
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1"))
    return {}


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
    """One socket of one identity in one queue.

    The identity is the logged-in user, else the signed visitor cookie; a socket with neither
    hears ``identity_required`` and is closed with 4401. All the identity's sockets share its
    one entry through the hub.
    """

    #: Broadcasts come from the hub's one subscription per process, not a channel layer
    #: (a channel per socket would cost Redis work per socket per message).
    channel_layer_alias = None
    #: Seconds clock for the rate limit and heartbeats; tests swap it.
    clock = staticmethod(time.monotonic)

    seat: Seat | None = None
    room: Any = None
    identity: str | None = None
    bucket: MessageBucket

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

    async def dispatch(self, message: dict[str, Any]) -> None:
        # channels' dispatch closes stale DB connections around every frame (a thread hop per
        # heartbeat); the store and row work below runs through database_sync_to_async, which
        # does that where it matters.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # -- connecting -------------------------------------------------------------------------
    async def connect(self) -> None:
        await self.accept()
        identity = identity_for(self.scope.get("user"), _cookies(self.scope))
        if identity is None:
            await self._refuse(IdentityRequired(), CLOSE_IDENTITY_REQUIRED)
            return
        slug = self.scope["url_route"]["kwargs"]["slug"]
        hub = get_hub()
        room = hub.room_for_slug(slug)
        if room is not None:
            queue = room.queue  # kept fresh by the room: no query per socket
        else:
            try:
                queue = await _in_thread(services.get_queue)(slug)
            except QueueNotFound as exc:
                await self._refuse(exc, CLOSE_QUEUE_NOT_FOUND)
                return
        self.identity = identity
        self.bucket = MessageBucket(
            float(queue_settings.WS_MESSAGE_RATE),
            float(queue_settings.WS_MESSAGE_BURST),
            self.clock,
        )
        seat = Seat(identity, _socket_send(self.base_send))
        # Subscribed before the status read: no broadcast after the read can be missed.
        self.room = await hub.attach(queue, seat)
        self.seat = seat
        await self._status(touch=True)

    @property
    def queue(self) -> Any:
        """The room's Queue row, shared by its sockets and refreshed when the queue changes."""
        return self.room.queue

    async def _refuse(self, exc: TicketQueueError, code: int) -> None:
        await self.send(text_data=error_frame(exc))
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        seat, self.seat = self.seat, None
        if seat is None:
            return
        get_hub().detach(seat)
        if seat.state == "waiting":
            # The disconnect grace counts from now.
            try:
                await _in_thread(services.heartbeat)(self.queue, self.identity)
            except Exception:
                log.warning("live: last heartbeat failed", exc_info=True)

    # -- client messages --------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        seat = self.seat
        if seat is None:
            return
        if not self.bucket.take():
            if self.bucket.should_warn():
                seat.send_text(error_frame(RateLimited()))
            return
        try:
            message = parse_client_message(
                text_data, bytes_data, int(queue_settings.WS_MAX_MESSAGE)
            )
        except InvalidMessage as exc:
            seat.send_text(error_frame(exc))
            return
        try:
            await getattr(self, f"client_{message['type']}")(message)
        except TicketQueueError as exc:
            seat.send_text(error_frame(exc))
        except Exception:
            log.exception("live: client message failed", extra={"queue": self.room.queue_id})
            seat.send_text(error_frame(QueueUnavailable()))

    async def client_join(self, message: dict[str, Any]) -> None:
        seat = self.seat
        assert seat is not None
        seat.joining = True
        try:
            status = await _in_thread(services.join)(self.queue, self.identity)
        finally:
            seat.joining = False
        self._apply(status)

    async def client_leave(self, message: dict[str, Any]) -> None:
        change = await _in_thread(services.leave)(self.queue, self.identity)
        seat = self.seat
        if seat is not None and seat.seq == change.seq:
            # Said at once here; the broadcast tells the identity's other sockets.
            self.room.end(seat, "left", "left")

    async def client_heartbeat(self, message: dict[str, Any]) -> None:
        seat = self.seat
        now = self.clock()
        if seat is None or seat.state != "waiting":
            return
        if now - seat.touched >= float(queue_settings.HEARTBEAT_INTERVAL) / 2:
            seat.touched = now
            if not await _in_thread(services.heartbeat)(self.queue, self.identity):
                raise EntryNotFound()

    async def client_status(self, message: dict[str, Any]) -> None:
        await self._status()

    async def _status(self, *, touch: bool = False) -> None:
        """Send the current truth: the position, or the pass if it was granted meanwhile."""
        try:
            status = await _in_thread(_read_status)(self.queue, self.identity, touch)
        except TicketQueueError as exc:
            if self.seat is not None:
                self.seat.send_text(error_frame(exc))
                # Not answered now (the store is being rebuilt or unreachable): read again soon.
                self.room.schedule_resync(self.seat, get_hub().clock(), follow_up=True)
            return
        if touch and self.seat is not None:
            self.seat.touched = self.clock()
        self._apply(status)

    def _apply(self, status: services.Status) -> None:
        if self.seat is not None:
            self.room.apply_status(self.seat, status, reply=True)


def _read_status(queue: Any, identity: str, touch: bool) -> services.Status:
    status = services.status(queue, identity)
    if touch and status.state == "waiting":
        services.heartbeat(queue, identity)
    return status
