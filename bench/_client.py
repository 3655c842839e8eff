"""The load generator's WebSocket client for bench/loadtest.py and its bare baseline.

The buyers' sockets and the server share this machine's two cores, so whatever the load
generator spends per socket is taken from the topology it measures; a buyer's phone or
browser would spend it on its own. ``picows`` (a client written in Cython) costs the load
generator about a quarter less CPU per socket than ``websockets`` (the sale's bare baseline:
0.44-0.52 ms against 0.57-0.70; docs/benchmarks.md, "The durable join burst"), so it is the
default; ``--client websockets`` keeps the earlier client for comparison. Both are driven
through the same small interface: ``open_socket``, then ``send``, ``recv`` and ``async for``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Any

import picows
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import InvalidStatus

CLIENTS = ("picows", "websockets")
MAX_FRAME = 2**16


class Closed(Exception):
    """The socket closed while a message was awaited."""


def handshake_status(exc: BaseException) -> int | None:
    """The HTTP status a refused handshake answered with, from either client."""
    if isinstance(exc, InvalidStatus):
        return exc.response.status_code
    if isinstance(exc, picows.WSInvalidStatusError) and exc.response is not None:
        return int(exc.response.status)
    return None


class _Listener(picows.WSListener):  # type: ignore[misc] # picows is not typed
    """Keeps a socket's text messages until read; picows answers pings itself."""

    def __init__(self) -> None:
        self.inbox: deque[str] = deque()
        self.partial: bytearray | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next_event(self) -> None:
        """Until the next message or the end of the socket."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        kind = frame.msg_type
        if kind == picows.WSMsgType.TEXT and frame.fin:
            self.inbox.append(frame.get_payload_as_utf8_text())
        elif kind in (picows.WSMsgType.TEXT, picows.WSMsgType.CONTINUATION):
            if kind == picows.WSMsgType.TEXT:
                self.partial = bytearray()
            if self.partial is not None:
                self.partial += frame.get_payload_as_bytes()
                if frame.fin:
                    self.inbox.append(self.partial.decode())
                    self.partial = None
        elif kind == picows.WSMsgType.CLOSE:  # the peer's close: answered, then the end
            if not transport.is_close_frame_sent:
                transport.send_close(picows.WSCloseCode.OK)
            transport.disconnect()
            self.closed = True
        else:
            return
        self._wake()

    def on_ws_disconnected(self, transport: Any) -> None:
        self.closed = True
        self._wake()


class _PicoSocket:
    def __init__(self, transport: Any, listener: _Listener) -> None:
        self.transport = transport
        self.listener = listener

    async def send(self, text: str) -> None:
        self.transport.send(picows.WSMsgType.TEXT, text.encode())

    async def recv(self) -> str:
        listener = self.listener
        while not listener.inbox:
            if listener.closed:
                raise Closed("the socket closed")
            await listener.next_event()
        return listener.inbox.popleft()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str]:
        while True:
            try:
                yield await self.recv()
            except Closed:
                return

    async def close(self) -> None:
        """The closing handshake, as websockets does it: our close frame, then the peer's
        (5 s at most), then the connection ends."""
        listener, transport = self.listener, self.transport
        if not transport.is_disconnected:
            transport.send_close(picows.WSCloseCode.OK)
            try:
                async with asyncio.timeout(5):
                    while not listener.closed:
                        await listener.next_event()
            except TimeoutError:
                pass
            transport.disconnect()
        await transport.wait_disconnected()


@asynccontextmanager
async def open_socket(
    client: str,
    url: str,
    headers: dict[str, str],
    origin: str,
    timeout: float | None,
    window: asyncio.Semaphore | None = None,
) -> AsyncIterator[Any]:
    """A socket to ``url`` sending ``headers`` and ``origin``, closed on leaving: both
    clients without compression, pings of their own or a proxy. With ``window``, the opening
    handshake waits for a place in it (``--in-flight``)."""
    async with window or nullcontext():
        socket = await _connect(client, url, headers, origin, timeout)
    try:
        yield socket
    finally:
        await socket.close()


async def _connect(
    client: str, url: str, headers: dict[str, str], origin: str, timeout: float | None
) -> Any:
    if client == "websockets":
        return await websockets_connect(
            url,
            additional_headers=headers,
            origin=origin,
            compression=None,
            proxy=None,  # a buyer behind no proxy: no look through os.environ per socket
            open_timeout=timeout,
            ping_interval=None,
            close_timeout=5,
            max_size=MAX_FRAME,
        )
    async with asyncio.timeout(timeout):  # the connection and the handshake, as websockets
        transport, listener = await picows.ws_connect(
            _Listener,
            url,
            extra_headers={**headers, "Origin": origin},
            websocket_handshake_timeout=None,
            max_frame_size=MAX_FRAME,
            read_buffer_init_size=4096,
        )
    return _PicoSocket(transport, listener)
