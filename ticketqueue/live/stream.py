"""Server-sent events: the queue socket's messages for clients that cannot hold a WebSocket.

``GET .../api/queues/<slug>/stream/`` (``text/event-stream``) is served by the ASGI processes that
serve the sockets, from the same hub: the stream is a seat like any socket's, with the socket's
identity (session or visitor cookie; an app without cookies sends ``X-Queue-Visitor``), limits
(``connect_ip``, ``connect_identity``) and messages, each as one ``data:`` line of the same
JSON. What a socket
client sends, the stream does itself: a heartbeat every ``HEARTBEAT_INTERVAL`` while the
connection is open (a comment line, which also shows a dead connection). Joining and leaving
stay REST calls (``join/``, ``leave/``, ``DELETE leave/``).

A refusal before the stream starts is a plain HTTP answer, so an ``EventSource`` does not retry
it: 401 ``identity_required``, 404 ``queue_not_found``, 409 ``device_in_use``, 429 ``throttled``
(with ``Retry-After``). Once streaming, the end of a socket (``closed``, ``device_replaced``) is an
``event: close`` with its code, and the stream ends; a client should not reconnect after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Sequence
from typing import Any

from ..conf import queue_settings
from ..identity import VISITOR_COOKIE, identity_for
from ..limits import address_of_scope
from .asgi import OriginCheck, _origin, path_slug, socket_identity
from .connection import QueueSocket, device_of_scope
from .protocol import (
    CLOSE_DEVICE,
    CLOSE_IDENTITY_REQUIRED,
    CLOSE_QUEUE_NOT_FOUND,
    CLOSE_THROTTLED,
)

__all__ = ["QueueStreamApp"]

#: ``.../api/queues/<slug>/stream/``, wherever the site mounted ``ticketqueue.urls``.
PATH = re.compile(r"(?:.*/)?api/queues/(?P<slug>[-a-zA-Z0-9_]+)/stream/")
#: A refusal's close code -> the HTTP status it is before the stream starts.
STATUS = {
    CLOSE_IDENTITY_REQUIRED: 401,
    CLOSE_QUEUE_NOT_FOUND: 404,
    CLOSE_DEVICE: 409,
    CLOSE_THROTTLED: 429,
}
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
]


class _EventStream:
    """The ASGI ``send`` a seat writes to: socket messages in, SSE out.

    Until ``start()`` (the socket was seated) messages are held, so a refusal can still be an
    HTTP status; after the close, nothing more is written.
    """

    def __init__(self, send: Any) -> None:
        self._send = send
        self.held: list[dict[str, Any]] | None = []
        self.ended = False

    async def __call__(self, message: dict[str, Any]) -> None:
        if self.held is not None:
            self.held.append(message)
        elif not self.ended:
            await self._write(message)

    async def _write(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await self._body(f"data: {message['text']}\n\n")
        elif message["type"] == "websocket.close":
            self.ended = True
            code = json.dumps({"code": message.get("code", 1000)})
            await self._send(
                {"type": "http.response.body", "body": f"event: close\ndata: {code}\n\n".encode()}
            )

    async def _body(self, text: str) -> None:
        await self._send({"type": "http.response.body", "body": text.encode(), "more_body": True})

    async def start(self) -> None:
        held, self.held = self.held or [], None
        await self._send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        # How long an EventSource waits before it reconnects a stream that broke.
        retry_ms = int(float(queue_settings.HEARTBEAT_INTERVAL) * 1000)
        await self._body(f"retry: {retry_ms}\n\n")
        for message in held:
            if not self.ended:
                await self._write(message)

    async def refuse(self) -> None:
        """The socket was refused before it was seated: its error as an HTTP answer."""
        held, self.held = self.held or [], None
        self.ended = True
        body = next((m["text"] for m in held if m["type"] == "websocket.send"), "{}")
        code = next((m.get("code") for m in held if m["type"] == "websocket.close"), None)
        error = json.loads(body)
        error.pop("type", None)
        wait = error.get("retry_after")
        headers = [(b"retry-after", str(int(wait)).encode())] if wait else []
        await _answer(self._send, STATUS.get(code or 0, 503), error, headers)

    async def comment(self) -> None:
        if self.held is None and not self.ended:
            await self._body(": still here\n\n")


async def _answer(
    send: Any, status: int, error: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """A refusal as a plain JSON answer (``{code, message}``), never cached."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(error).encode()})


def _header_identity(scope: dict[str, Any]) -> str | None:
    """An app without cookies names its visitor as it does over REST: ``X-Queue-Visitor``."""
    for name, value in scope.get("headers", ()):
        if name == b"x-queue-visitor":
            return identity_for(None, {VISITOR_COOKIE: value.decode("latin1")})
    return None


class QueueStreamApp:
    """ASGI application for the queue's event streams; every other HTTP request goes to
    ``http`` (the site's Django application)."""

    def __init__(self, http: Any) -> None:
        self.http = http
        self.origin_allowed = OriginCheck()  # the sockets' own origin check

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        slug = self.slug(scope)
        if slug is None:
            return await self.http(scope, receive, send)
        if scope.get("method") not in ("GET", "HEAD"):
            error = {"code": "method_not_allowed", "message": "Open the stream with GET."}
            return await _answer(send, 405, error)
        origin = _origin(scope)
        if origin is not None and not self.origin_allowed(origin):
            error = {"code": "permission_denied", "message": "Not from this site."}
            return await _answer(send, 403, error)
        stream = _EventStream(send)
        socket = QueueSocket()
        beat: asyncio.Task[None] | None = None
        try:
            identity = await socket_identity(scope) or _header_identity(scope)
            await socket.open(
                stream, slug, identity, address_of_scope(scope), device_of_scope(scope)
            )
            if socket.seat is None:
                await stream.refuse()
                return None
            await stream.start()
            beat = asyncio.ensure_future(self._heartbeats(socket, stream))
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
            await socket.close()
        return None

    @staticmethod
    async def _heartbeats(socket: QueueSocket, stream: _EventStream) -> None:
        """What a socket's client sends, said for the stream's: "still here"."""
        interval = float(queue_settings.HEARTBEAT_INTERVAL)
        while not stream.ended:
            await asyncio.sleep(interval)
            await socket.receive('{"type": "heartbeat"}', None)
            await stream.comment()

    @staticmethod
    def slug(scope: dict[str, Any]) -> str | None:
        return path_slug(scope, PATH) if scope["type"] == "http" else None
