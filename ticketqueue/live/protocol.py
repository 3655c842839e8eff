"""The WebSocket wire protocol: message names, error codes, close codes, frame encoding and
client-message parsing. docs/protocol.md is the reference; this module is its one implementation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext_noop

from ..core import InvalidInput, Throttled, TicketQueueError
from ..errors import error_body

__all__ = [
    "CLIENT_TYPES",
    "CLOSE_DEVICE",
    "CLOSE_IDENTITY_REQUIRED",
    "CLOSE_QUEUE_CLOSED",
    "CLOSE_QUEUE_NOT_FOUND",
    "CLOSE_THROTTLED",
    "FrameTooLarge",
    "SUBPROTOCOL",
    "IdentityRequired",
    "InvalidFrame",
    "InvalidJSON",
    "InvalidMessage",
    "PREPARED",
    "MessageBucket",
    "RateLimited",
    "UnknownType",
    "closed_frame",
    "encode",
    "ended_frame",
    "error_frame",
    "granted_frame",
    "line_frame",
    "milestone_frame",
    "parse_client_message",
    "prepared_text_frame",
    "update_frame",
    "update_frame_head",
    "update_frame_tail",
]

#: The WebSocket subprotocol of protocol version 2: a client that offers it hears one ``line``
#: frame per queue update, the same bytes for every socket of the queue, and keeps its own
#: place from it (docs/protocol.md, "Version 2"). A client that offers none speaks version 1.
SUBPROTOCOL = "ticketqueue.v2"

#: A key of ours in a ``websocket.send`` message: the text already framed for the wire
#: (``prepared_text_frame``). The same line frame goes to thousands of sockets, and a server
#: frame is the same bytes on every socket without compression, so ticketqueue's uvicorn
#: protocol writes it as is; any other server ignores the key and frames the text itself.
PREPARED = "ticketqueue.prepared"

#: What a client may send; every other ``type`` gets ``unknown_type``.
CLIENT_TYPES = frozenset({"join", "leave", "heartbeat", "status"})

# Close codes (4000-4999 are the application's). A client must not reconnect after these.
CLOSE_IDENTITY_REQUIRED = 4401
CLOSE_QUEUE_NOT_FOUND = 4404
#: One device per person: another device took the place (``device_replaced``), or the person
#: was admitted on another (``device_in_use``). The widget offers to continue on this device.
CLOSE_DEVICE = 4409
CLOSE_QUEUE_CLOSED = 4410
#: Over a connection limit (``limits``): not fatal, the client reconnects with its backoff.
CLOSE_THROTTLED = 4429


class InvalidMessage(InvalidInput):
    code = "invalid_message"
    default_message = gettext_noop("A message must be a JSON object with a string 'type'.")


class InvalidFrame(InvalidMessage):
    code = "invalid_frame"
    default_message = gettext_noop("Binary frames are not supported; send JSON text.")


class InvalidJSON(InvalidMessage):
    code = "invalid_json"
    default_message = gettext_noop("The message is not valid JSON.")


class FrameTooLarge(InvalidMessage):
    code = "frame_too_large"
    default_message = gettext_noop("The message is too large.")


class UnknownType(InvalidMessage):
    code = "unknown_type"
    default_message = gettext_noop("Unknown message type.")


class RateLimited(TicketQueueError):
    code = "rate_limited"
    default_message = gettext_noop("Too many messages; slow down. Extra messages are ignored.")
    status = 429


class ServerBusy(Throttled):
    """This socket process is full (its descriptors or SOCKETS_PER_PROCESS): try again in a
    moment, when a load balancer may send the handshake to another process."""

    code = "server_busy"
    default_message = gettext_noop("The waiting room is busy. Trying again in a moment…")
    status = 503


class IdentityRequired(TicketQueueError):
    code = "identity_required"
    default_message = gettext_noop(
        "Log in, or load the waiting-room page (or call the REST join) first: it sets the "
        "visitor cookie this connection needs."
    )
    status = 401


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def error_frame(exc: TicketQueueError) -> str:
    return encode({"type": "error", **error_body(exc)})


# The server's messages besides queue_update, line and error: one producer each.


def granted_frame(*, token: str | None, expires_at: float | None, seq: int | None) -> str:
    """Your turn: the pass, when it expires, and the entry it is for."""
    return encode({"type": "granted", "pass": token, "expires_at": expires_at, "seq": seq})


def ended_frame(kind: str, reason: str) -> str:
    """The entry ended without a purchase: ``revoked`` or ``left``, and why."""
    return encode({"type": kind, "reason": reason})


def closed_frame() -> str:
    """The queue closed (sold out, or ended by an operator)."""
    return encode({"type": "closed", "queue_state": "closed"})


def milestone_frame(milestone: str, **details: Any) -> str:
    """A milestone reached (``ticketqueue.milestones``): ``within``, ``minutes`` or
    ``expires_at``, as the milestone has them."""
    return encode({"type": "milestone", "milestone": milestone, **details})


#: The few strings a queue_update carries, encoded once.
_ENCODED: dict[Any, str] = {None: "null"}


def _json(value: int | str | None) -> str:
    if isinstance(value, int):
        return str(value)
    try:
        return _ENCODED[value]
    except KeyError:
        encoded = json.dumps(value)
        if len(_ENCODED) < 64:  # queue and entry states: a handful
            _ENCODED[value] = encoded
        return encoded


def update_frame_head(*, queue_state: str, waiting: int, active: int) -> str:
    """The part of a ``queue_update`` every socket of a queue shares (made once per tick)."""
    return (
        f'{{"type":"queue_update","queue_state":{_json(queue_state)},'
        f'"waiting":{waiting},"active":{active},'
    )


def update_frame_tail(
    *,
    state: str | None,
    position: int | None,
    eta_seconds: int | None,
    sold_out_likely: bool = False,
    seen: tuple[float | None, int | None, int | None] | None = None,
) -> str:
    """The part of a ``queue_update`` that is the socket's own (``sold_out_likely`` only
    when true: the frame sent at scale stays as short as it was). ``seen``: for a version 2
    socket, the entry's order and the admitted and departed totals the position reflects,
    which the client moves its place from."""
    flag = ',"sold_out_likely":true' if sold_out_likely else ""
    if seen is not None:
        order, admitted, departed = seen
        flag += (
            f',"order":{"null" if order is None else json.dumps(order)},'
            f'"admitted_total":{_json(admitted)},"departed_total":{_json(departed)}'
        )
    return (
        f'"state":{_json(state)},"position":{_json(position)},'
        f'"eta_seconds":{_json(eta_seconds)}{flag}}}'
    )


def line_frame(
    *,
    queue_state: str,
    waiting: int,
    active: int,
    admitted_total: int | None,
    departed: list[float],
    departed_total: int | None,
    rate: float | None,
    stock: int | None,
) -> str:
    """A version 2 ``line`` frame: how the line moved, the same for every socket of a queue.
    ``departed`` are the orders of the departures numbered up to ``departed_total``."""
    return encode(
        {
            "type": "line",
            "queue_state": queue_state,
            "waiting": waiting,
            "active": active,
            "admitted_total": admitted_total,
            "departed_total": departed_total,
            "departed": departed,
            "rate": rate,
            "stock": stock,
        }
    )


def update_frame(
    *,
    queue_state: str,
    state: str | None,
    position: int | None,
    waiting: int,
    active: int,
    eta_seconds: int | None,
) -> str:
    """A ``queue_update`` frame, formatted by hand: it is the message sent at scale."""
    return update_frame_head(
        queue_state=queue_state, waiting=waiting, active=active
    ) + update_frame_tail(state=state, position=position, eta_seconds=eta_seconds)


def prepared_text_frame(text: str) -> bytes:
    """``text`` as one final, unmasked, uncompressed WebSocket text frame (RFC 6455 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


def parse_client_message(text: str | None, data: bytes | None, max_bytes: int) -> dict[str, Any]:
    """The client message in one frame, validated; raises an InvalidMessage subclass."""
    if text is None:
        raise InvalidFrame()
    # A str of n characters encodes to n..4n bytes: only encode when it could be too large.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode()) > max_bytes):
        raise FrameTooLarge(f"The message is larger than {max_bytes} bytes.")
    try:
        message = json.loads(text)
    except ValueError:
        raise InvalidJSON() from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise InvalidMessage()
    if message["type"] not in CLIENT_TYPES:
        raise UnknownType(
            f"Unknown message type; expected one of {', '.join(sorted(CLIENT_TYPES))}."
        )
    return message


class MessageBucket:
    """Per-connection token bucket for client messages, on an injected clock.

    Over the limit a message is dropped; the client hears ``rate_limited`` at most once per
    second so a flood cannot turn the server into an amplifier.
    """

    __slots__ = ("burst", "clock", "rate", "tokens", "updated", "warned")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()
        self.warned = -math.inf

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def should_warn(self) -> bool:
        now = self.clock()
        if now - self.warned >= 1.0:
            self.warned = now
            return True
        return False
