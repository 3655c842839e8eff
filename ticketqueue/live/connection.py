"""One queue socket's behaviour, whichever ASGI front end carries it: the Channels consumer
(``ticketqueue.consumers``) or the lean application (``ticketqueue.live.asgi``).

Both accept the socket, work out the identity their own way and then hand everything to a
``QueueSocket``: the connect-time read, the client's messages (rate limit, size, parsing),
the seat in the hub and the last heartbeat on disconnect. The frames go out through the raw
ASGI ``send``, so the per-socket state is this one small object and its seat.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError
from django.http.cookie import parse_cookie

from .. import limits, proofs, services
from ..conf import queue_settings
from ..core import (
    DatabaseUnavailable,
    DeviceInUse,
    DeviceRequired,
    QueueNotFound,
    QueueUnavailable,
    Throttled,
    TicketQueueError,
)
from ..identity import DEVICE_HEADER, device_of
from .hub import WAITING, Seat, get_hub
from .protocol import (
    CLOSE_DEVICE,
    CLOSE_IDENTITY_REQUIRED,
    CLOSE_QUEUE_NOT_FOUND,
    CLOSE_THROTTLED,
    SUBPROTOCOL,
    IdentityRequired,
    InvalidMessage,
    MessageBucket,
    RateLimited,
    error_frame,
    parse_client_message,
)

__all__ = ["QueueSocket", "accept_message", "device_of_scope", "in_thread", "scope_cookies"]

log = logging.getLogger("ticketqueue.live")

Send = Any  # the ASGI send callable


def in_thread(func: Any, *, ahead: bool = False) -> Any:
    """Store and row work runs in the thread pool, not the one thread Django's sync code
    shares: thousands of sockets reconnecting at once must not queue behind each other.
    ``ahead``: on threads of its own, so it never waits behind a burst's joins in the pool."""
    executor = _ahead_pool() if ahead else None
    return database_sync_to_async(func, thread_sensitive=False, executor=executor)


_ahead: ThreadPoolExecutor | None = None
_ahead_lock = threading.Lock()


def _ahead_pool() -> ThreadPoolExecutor:
    global _ahead
    with _ahead_lock:
        if _ahead is None:  # made in the serving process: its threads start on first use
            _ahead = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ticketqueue-ahead")
        return _ahead


def scope_cookies(scope: dict[str, Any]) -> dict[str, str]:
    """The handshake's cookies: parsed already by channels' CookieMiddleware, else here."""
    if "cookies" in scope:
        return scope["cookies"]
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1"))
    return {}


def accept_message(scope: dict[str, Any]) -> dict[str, Any]:
    """The handshake's acceptance: protocol version 2 when the client offered its
    subprotocol, else version 1 (no subprotocol)."""
    if SUBPROTOCOL in scope.get("subprotocols", ()):
        return {"type": "websocket.accept", "subprotocol": SUBPROTOCOL}
    return {"type": "websocket.accept"}


def device_of_scope(scope: dict[str, Any]) -> str | None:
    """The digest of the handshake's device id (``X-Queue-Device``, else the cookie)."""
    meta = {}
    for name, value in scope.get("headers", ()):
        if name == b"x-queue-device":
            meta[DEVICE_HEADER] = value.decode("latin1")
    return device_of(meta, scope_cookies(scope))


class QueueSocket:
    """One socket of one identity in one queue, from the accepted handshake to the disconnect.

    A socket without an identity hears ``identity_required`` and is closed with 4401; every
    socket of one identity shares its one entry through the hub.
    """

    __slots__ = ("address", "bucket", "device", "identity", "room", "seat")

    #: Seconds clock for the rate limit and heartbeats; tests swap it.
    clock = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self.seat: Seat | None = None
        self.room: Any = None
        self.identity: str | None = None
        self.address = ""
        self.device: str | None = None
        self.bucket: MessageBucket | None = None

    # -- connecting -------------------------------------------------------------------------
    async def open(
        self,
        send: Send,
        slug: str,
        identity: str | None,
        address: str = "",
        device: str | None = None,
        *,
        follows: bool = False,
    ) -> None:
        """After the handshake was accepted: seat the socket and tell it the truth.

        ``address``: the client's (``limits.address_of_scope``), for the per-address limits;
        ``device``: its device (``device_of_scope``), for queues with one device per person;
        ``follows``: the client speaks protocol version 2 (``accept_message``).
        """
        if identity is None:
            await refuse(send, IdentityRequired(), CLOSE_IDENTITY_REQUIRED)
            return
        hub = get_hub()
        try:
            queue = await hub.queue_for_slug(slug)
        except QueueNotFound as exc:
            await refuse(send, exc, CLOSE_QUEUE_NOT_FOUND)
            return
        one_device = queue.device_policy == "one"
        if one_device:
            try:
                await in_thread(limits.check)(
                    queue.store_id, [("connect_ip", address), ("connect_identity", identity)]
                )
            except Throttled as exc:
                await refuse(send, exc, CLOSE_THROTTLED)
                return
            # One device per person: this one takes the place (the others are told), unless
            # the person was admitted on another.
            try:
                if device is None:
                    raise DeviceRequired()
                await in_thread(services.bind_device)(queue, identity, device)
            except DeviceRequired as exc:  # the widget fetches its cookies and comes back
                await refuse(send, exc, CLOSE_IDENTITY_REQUIRED)
                return
            except DeviceInUse as exc:
                await refuse(send, exc, CLOSE_DEVICE)
                return
        self.identity = identity
        self.address = address
        self.device = device
        self.bucket = MessageBucket(
            float(queue_settings.WS_MESSAGE_RATE),
            float(queue_settings.WS_MESSAGE_BURST),
            self.clock,
        )
        seat = Seat(identity, send, device, follows=follows)
        # Subscribed before the status read: no broadcast after the read can be missed.
        self.room = await hub.attach(queue, seat)
        self.seat = seat
        if one_device:
            await self._status(opening=True)
            return
        # The limits and the connect-time read, with the other sockets connecting now.
        try:
            status = await self.room.opening(identity, address)
        except Throttled as exc:
            # Not fatal: the widget reconnects with its backoff, and the limit has room then.
            self.seat = None
            hub.detach(seat)
            await refuse(send, exc, CLOSE_THROTTLED)
            return
        except TicketQueueError as exc:
            seat.send_text(error_frame(exc))
            # Not answered now (the store is being rebuilt or unreachable): read again soon.
            self.room.schedule_resync(seat, hub.clock(), follow_up=True)
            return
        seat.touched = self.clock()
        self._apply(status)

    @property
    def queue(self) -> Any:
        """The room's Queue row, shared by its sockets and refreshed when the queue changes."""
        return self.room.queue

    async def close(self) -> None:
        """The socket is gone: leave the room and stop counting as present; a waiting entry's
        grace counts from now."""
        seat, self.seat = self.seat, None
        if seat is None:
            return
        # The hub it sat in (after shutdown() there is no other: none is made to detach).
        self.room.hub.detach(seat)
        try:
            await in_thread(services.disconnect)(
                self.queue, self.identity, waiting=seat.state == WAITING
            )
        except Exception:
            log.warning("live: recording the disconnect failed", exc_info=True)

    # -- client messages --------------------------------------------------------------------
    async def receive(self, text: str | None, data: bytes | None) -> None:
        """One client frame: rate limit, then size, JSON and shape, then the message."""
        seat = self.seat
        bucket = self.bucket
        if seat is None or bucket is None:
            return
        if not bucket.take():
            if bucket.should_warn():
                seat.send_text(error_frame(RateLimited()))
            return
        try:
            message = parse_client_message(text, data, int(queue_settings.WS_MAX_MESSAGE))
        except InvalidMessage as exc:
            seat.send_text(error_frame(exc))
            return
        try:
            await getattr(self, f"client_{message['type']}")(message)
        except TicketQueueError as exc:
            seat.send_text(error_frame(exc))
        except (OperationalError, InterfaceError):
            log.warning("live: database unavailable", exc_info=True)
            seat.send_text(error_frame(DatabaseUnavailable()))
        except Exception:
            log.exception("live: client message failed", extra={"queue": self.room.queue_id})
            seat.send_text(error_frame(QueueUnavailable()))

    async def client_join(self, message: dict[str, Any]) -> None:
        seat = self.seat
        assert seat is not None
        proof = proofs.JoinProof.from_data(message)
        seat.joining = True
        try:
            if services.asks_only_identity(self.queue) and not (proof and proof.invite):
                # With the room's other joins of this moment: one thread hop, one INSERT.
                status = await self.room.joining(self.identity, self.address)
            else:
                status = await in_thread(self._join)(proof)
        finally:
            seat.joining = False
        self._apply(status)

    def _join(self, proof: proofs.JoinProof | None) -> services.Status:
        """A place asked for over the socket counts against the same limits as over REST."""
        queue = self.queue
        limits.check(queue.store_id, [("join_ip", self.address), ("join_identity", self.identity)])
        return services.join(
            queue, self.identity, proof=proof, address=self.address, device=self.device
        )

    async def client_leave(self, message: dict[str, Any]) -> None:
        # Ahead of the joins: whoever gives up a place hears so at once, and the place is free.
        change = await in_thread(services.leave, ahead=True)(self.queue, self.identity)
        seat = self.seat
        if seat is not None and seat.seq == change.seq:
            # Said at once here; the broadcast tells the identity's other sockets.
            self.room.end(seat, "left", "left")

    async def client_heartbeat(self, message: dict[str, Any]) -> None:
        seat = self.seat
        now = self.clock()
        if seat is None:
            return
        if now - seat.touched >= float(queue_settings.HEARTBEAT_INTERVAL) / 2:
            seat.touched = now
            # Written with the process's other heartbeats within RESYNC_PERIOD; a waiting seat
            # whose entry is gone then hears entry_not_found (an admitted one whose pass ended
            # hears so by its own message).
            self.room.heard(seat)

    async def client_status(self, message: dict[str, Any]) -> None:
        await self._status()

    async def _status(self, *, opening: bool = False) -> None:
        """Send the current truth: the position, or the pass if it was granted meanwhile."""
        try:
            status = await in_thread(_read_status)(self.queue, self.identity, opening)
        except TicketQueueError as exc:
            if self.seat is not None:
                self.seat.send_text(error_frame(exc))
                # Not answered now (the store is being rebuilt or unreachable): read again soon.
                self.room.schedule_resync(self.seat, self.room.hub.clock(), follow_up=True)
            return
        if opening and self.seat is not None:
            self.seat.touched = self.clock()
        self._apply(status)

    def _apply(self, status: services.Status) -> None:
        if self.seat is not None:
            self.room.apply_status(self.seat, status, reply=True)


async def refuse(send: Send, exc: TicketQueueError, code: int) -> None:
    """Tell an accepted socket why it cannot stay, then close it with ``code``."""
    await send({"type": "websocket.send", "text": error_frame(exc)})
    await send({"type": "websocket.close", "code": code})


def _read_status(queue: Any, identity: str, opening: bool) -> services.Status:
    if opening:  # present from now on, and a waiting entry seen now (as Room.opening does)
        return services.open_connections(queue, [identity])[identity]
    return services.status(queue, identity)
