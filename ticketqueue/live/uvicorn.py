"""A lighter uvicorn WebSocket protocol for processes that hold thousands of idle sockets.

    uvicorn mysite.asgi:application --ws ticketqueue.live.uvicorn:WebSocketProtocol ...

uvicorn's ``websockets-sansio`` protocol keeps, for as long as a socket is open, an
``asyncio.Queue`` for the messages the application has not read yet (four deques of 64 slots:
about 3 KiB), an ``asyncio.Event`` for write flow control (one more deque) and the handshake's
request and response with all their headers (about 3 KiB more), on a socket that has long
been upgraded. This subclass changes exactly that and nothing else: a list and one future
instead of the queue, a flag instead of the event, and the handshake dropped once the socket is
accepted (uvicorn never reads it again). Four additions:

- a ``line`` frame the hub already framed for every socket (``protocol.PREPARED``) is written
  as is;
- a keepalive ping goes only to a socket quiet in either direction;
- reading stops once INBOX_LIMIT messages wait unread, not at each one;
- the opening handshake is read once. uvicorn's HTTP protocol has parsed and checked the
  upgrade request and writes it out again for this one, which websockets parsed a second time.
  Here it is split into websockets' ``Request`` as it stands, and a plain upgrade with nothing
  to negotiate is answered without websockets' header parsers (``upgrade_request``,
  ``LeanServerProtocol``; under websockets releases other than ``WEBSOCKETS_TESTED``,
  websockets reads every handshake itself).

Everything else (frames, limits, write flow control and closing) is uvicorn's and websockets'
own code.

It subclasses uvicorn's implementation, so it is tied to it: written against uvicorn 0.54 and
tested under the versions in ``TESTED`` (tests/live runs the queue socket's whole protocol
through it, and CI runs them on the newest uvicorn too). Under any other uvicorn,
``WebSocketProtocol`` is uvicorn's own class, said in a warning when the server loads it: the
same behaviour with more memory per socket, never this subclass on code it was not tested
against. If uvicorn's class goes away, importing this module fails loudly.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import logging
import re
from importlib.metadata import version
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader
from websockets.headers import parse_subprotocol
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS, Request, Response
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.utils import accept_key

from .protocol import PREPARED

__all__ = [
    "INBOX_LIMIT",
    "SHORT_HANDSHAKE",
    "TESTED",
    "WEBSOCKETS_TESTED",
    "Inbox",
    "LeanServerProtocol",
    "LeanWebSocketProtocol",
    "WebSocketProtocol",
    "Writable",
    "choose",
    "upgrade_request",
]

log = logging.getLogger("ticketqueue.live")

#: Messages a socket's application may leave unread before the socket stops reading.
INBOX_LIMIT = 4

#: The uvicorn releases (major, minor) this protocol was tested under; keep in step with the
#: ``uvicorn`` extra in pyproject.toml.
TESTED = ((0, 54), (0, 55))
#: The websockets releases (major) whose protocol internals the short handshake was tested
#: with (its parser, the attributes ``accept`` sets); under any other, websockets reads and
#: answers every handshake itself, as under uvicorn's own class.
WEBSOCKETS_TESTED = (17,)
SHORT_HANDSHAKE = int(version("websockets").split(".")[0]) in WEBSOCKETS_TESTED


class Inbox:
    """What uvicorn needs of ``asyncio.Queue`` for one socket's incoming messages: one reader
    (the application's ``receive``), ``put_nowait`` from the protocol, ``empty``/``qsize``."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Writable:
    """What uvicorn needs of ``asyncio.Event`` for write flow control: ``wait`` returns at once
    while set (the usual case: no suspension, no future), ``clear`` when the transport's
    buffer is full, ``set`` when it drained or the connection was lost."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


def upgrade_request(data: bytes) -> Request | None:
    """The upgrade request as uvicorn's HTTP protocol hands it over, read into websockets'
    ``Request`` without a parser: uvicorn parsed and checked it already (h11 or httptools) and
    writes it out again as one request line and ``name: value`` lines (``handle_websocket_
    upgrade``). None for anything else, or anything websockets' own reading would refuse or
    treat otherwise (non-ASCII, a body, more or longer lines than it takes): websockets reads
    that as before."""
    head, end, rest = data.partition(b"\r\n\r\n")
    if not end or rest or not head.isascii():
        return None
    request_line, *lines = head.decode("ascii").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or len(lines) > MAX_NUM_HEADERS:
        return None
    method, path, protocol = parts
    pairs = []
    for line in lines:
        name, sep, value = line.partition(": ")
        if not sep or len(line) > MAX_LINE_LENGTH or name in BODY_HEADERS:
            return None
        pairs.append((name, value))
    return Request(path, Headers(pairs), method, protocol)


#: Request headers after which websockets' own reading of a request decides.
BODY_HEADERS = frozenset({"content-length", "transfer-encoding"})
#: The Connection headers browsers and clients send with an upgrade (lower case).
PLAIN_CONNECTION = frozenset({"upgrade", "keep-alive, upgrade", "upgrade, keep-alive"})


class LeanServerProtocol(ServerProtocol):
    """websockets' server side of the protocol, told the request it need not parse, and
    answering a plain upgrade with nothing to negotiate itself.

    Plain: GET over HTTP/1.1, ``Upgrade: websocket``, one of the usual ``Connection`` headers,
    one valid key, version 13, at most one Origin, well-formed subprotocols, and a protocol
    with no origins, extensions or subprotocols of its own to check (uvicorn's, with
    permessage-deflate off; it picks the subprotocol itself). The answer is the one
    ``ServerProtocol.accept`` gives that request; anything else goes to it, for its precise
    refusal."""

    def take_request(self) -> None:
        """The request was read for this protocol (``upgrade_request``): what comes next are
        frames. ``ServerProtocol.parse`` would read a request first."""
        self.parser = Protocol.parse(self)  # websockets' frame parser
        next(self.parser)

    def accept(self, request: Request) -> Response:
        answer = self._plain_answer(request)
        if answer is None:
            return super().accept(request)
        self.accept_called = True
        self.origin = request.headers.get("Origin")  # type: ignore[assignment]
        self.extensions, self.subprotocol = [], None
        headers = Headers()
        headers["Date"] = email.utils.formatdate(usegmt=True)
        headers["Upgrade"] = "websocket"
        headers["Connection"] = "Upgrade"
        headers["Sec-WebSocket-Accept"] = answer
        return Response(101, "Switching Protocols", headers)

    def _plain_answer(self, request: Request) -> str | None:
        """The Sec-WebSocket-Accept of a plain upgrade (see above), else None."""
        own_checks = (
            self.origins is not None
            or self.available_extensions
            or self.available_subprotocols
            or "select_subprotocol" in vars(self)
        )
        if own_checks or request.method != "GET":
            return None
        headers = request.headers
        upgrade, key = headers.get_all("Upgrade"), headers.get_all("Sec-WebSocket-Key")
        connection = headers.get_all("Connection")
        if (
            request.protocol != "HTTP/1.1"
            or len(upgrade) != 1
            or upgrade[0].lower() != "websocket"
            or len(connection) != 1
            or connection[0].lower() not in PLAIN_CONNECTION
            or len(key) != 1
            or headers.get_all("Sec-WebSocket-Version") != ["13"]
            or len(headers.get_all("Origin")) > 1
        ):
            return None
        try:
            if len(base64.b64decode(key[0].encode(), validate=True)) != 16:
                return None
            for value in headers.get_all("Sec-WebSocket-Protocol"):
                parse_subprotocol(value)
        except (binascii.Error, InvalidHeader, ValueError):
            return None
        return accept_key(key[0])


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with less kept per open socket (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if SHORT_HANDSHAKE:  # the ServerProtocol uvicorn made, given the short path in place
            self.conn.__class__ = LeanServerProtocol
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Writable()  # type: ignore[assignment]
        self.writable.set()
        # Since the last ping's time: a frame came from the peer (heard), one went to it (spoke).
        self.heard = self.spoke = False

    async def send(self, message: Any) -> None:
        prepared = message.get(PREPARED)
        if prepared is None or not self.write_prepared(prepared):
            self.spoke = True
            await super().send(message)

    def write_prepared(self, frame: bytes) -> bool:
        """Write a frame the hub framed once for every socket (``protocol.PREPARED``) as is,
        at once; False (nothing written) unless the socket is open, writable and
        uncompressed. That is what framing it here would produce: websockets keeps no state
        for a whole text frame sent. The hub calls it directly, without a coroutine per
        socket; ``send`` uses it for a message that carries the prepared frame."""
        if (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
            and self.writable.is_set()
            and self.conn.state is State.OPEN
            and not self.conn.extensions
            and not self.conn.expect_continuation_frame
        ):
            self.transport.write(frame)
            self.spoke = True
            return True
        return False

    def send_receive_event_to_app(self) -> None:
        """uvicorn stops reading a socket at each message until the application takes it:
        two epoll changes per heartbeat, a tenth of a socket process's CPU at 15,000 sockets.
        Reading stops only once INBOX_LIMIT messages wait; the application's ``receive``
        resumes it when they are taken, as uvicorn's does."""
        paused = self.read_paused
        self.read_paused = True  # so uvicorn's own pause after each message is skipped
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not paused and self.queue.qsize() >= INBOX_LIMIT:
            self.read_paused = True
            self.transport.pause_reading()

    def start_keepalive(self) -> None:
        # Called once, right after the accepted handshake's response was written: the request
        # and response (headers and all) are never read again.
        self.request = self.response = None
        super().start_keepalive()

    def data_received(self, data: bytes) -> None:
        self.heard = True
        if (
            not self.handshake_initiated
            and isinstance(self.conn, LeanServerProtocol)
            and (request := upgrade_request(data)) is not None
        ):
            self.conn.take_request()
            self.handle_connect(request)
            return
        super().data_received(data)

    def handle_pong(self, event: Any) -> None:
        super().handle_pong(event)
        self.heard = False  # the answer to a ping is not news that makes the next one needless

    def send_keepalive_ping(self) -> None:
        """Ping only a socket that needs it: one that both sent a frame and was sent one since
        the last ping's time has just shown it is alive and kept every proxy on its way busy,
        so its ping waits one more interval. A widget says heartbeat every 25 s and a moving
        line sends a frame every few seconds: most pings (and their pongs) are then never
        written, which at 100,000 sockets is thousands of frames a second. A silent peer, or a
        quiet line, is pinged every interval as before; a dead one is found within two
        intervals and the timeout."""
        closing = self.close_sent or self.transport.is_closing()
        if self.heard and self.spoke and self.ping_interval and not closing:
            self.heard = self.spoke = False
            self.ping_timer = self.loop.call_later(self.ping_interval, self.send_keepalive_ping)
            return
        self.heard = self.spoke = False
        super().send_keepalive_ping()


def choose(installed: str) -> type[WebSocketsSansIOProtocol]:
    """The lean protocol under a tested uvicorn; uvicorn's own, with a warning, otherwise."""
    release = tuple(int(part) for part in re.findall(r"\d+", installed)[:2])
    if release in TESTED:
        return LeanWebSocketProtocol
    log.warning(
        "ticketqueue.live.uvicorn was tested with uvicorn %s, not %s: serving with uvicorn's "
        "own websockets-sansio protocol instead (same behaviour, ~6 KiB more per socket)",
        " and ".join(".".join(map(str, r)) for r in TESTED),
        installed,
    )
    return WebSocketsSansIOProtocol


#: What ``--ws ticketqueue.live.uvicorn:WebSocketProtocol`` serves with.
WebSocketProtocol = choose(version("uvicorn"))
