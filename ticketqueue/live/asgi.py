"""The lean queue socket: ``ws/queue/<slug>/`` served by a plain ASGI application.

The same protocol, hub, seats and client-message handling as the Channels consumer (both hand
the accepted socket to ``QueueSocket``), without what Channels keeps per socket for as long as
it is open: a copy of the scope per middleware layer and their suspended coroutines, the
session and user objects, the consumer instance. What stays per socket is the identity string,
the ``QueueSocket`` and its seat. docs/protocol.md ("Serving") shows how to mount it; the
site's other WebSocket routes go to ``fallback``, typically the usual Channels stack.

What it does in Channels' place, with Channels' own code where there is some:

- the origin check of ``AllowedHostsOriginValidator`` (``ALLOWED_HOSTS``, read when the
  application is made), refused at the handshake (403);
- the identity: ``scope["user"]`` if a middleware around this application set one (a bearer
  token, say), else the user of the Django session cookie, read once in the thread pool and
  only when there is a session cookie, else the signed visitor cookie. Only the identity string
  is kept; the session and user objects are dropped after the handshake.
"""

from __future__ import annotations

import functools
import gc
import re
from importlib import import_module
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings

from ..conf import queue_settings
from ..identity import identity_for, user_identity
from ..limits import address_of_scope
from .connection import QueueSocket, accept_message, device_of_scope, in_thread, scope_cookies
from .headroom import get_headroom, refuse

__all__ = ["OriginCheck", "QueueSocketApp", "ready_for_a_burst", "socket_identity"]

#: ``ws/queue/<slug>/`` (routing.WS_PATH) with Django's ``slug`` converter.
PATH = re.compile(r"ws/queue/(?P<slug>[-a-zA-Z0-9_]+)/")


class QueueSocketApp:
    """ASGI application for the queue's sockets; anything else goes to ``fallback``.

    ``fallback`` is any ASGI application (the site's Channels stack for its other sockets, or
    a ``ProtocolTypeRouter``); without one, other WebSocket paths are refused at the handshake.
    """

    def __init__(self, fallback: Any = None) -> None:
        self.fallback = fallback
        self.origin_allowed = OriginCheck()
        ready_for_a_burst()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        slug = self.slug(scope) if scope["type"] == "websocket" else None
        if slug is None:
            if self.fallback is not None:
                return await self.fallback(scope, receive, send)
            if scope["type"] != "websocket":
                raise ValueError(f"No application for a {scope['type']!r} connection")
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.close"})
            return None
        if (await receive())["type"] != "websocket.connect":
            return None
        if not self.origin_allowed(_origin(scope)):
            await send({"type": "websocket.close"})  # before accepting: a 403 at the handshake
            return None
        headroom = get_headroom()
        if not headroom.take():
            await refuse(scope, send)  # full: 503 + Retry-After, the sockets held go on
            return None
        socket = QueueSocket()
        try:
            accept = accept_message(scope)
            await send(accept)
            identity = await socket_identity(scope)
            await socket.open(
                send,
                slug,
                identity,
                address_of_scope(scope),
                device_of_scope(scope),
                follows="subprotocol" in accept,
            )
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    data = message.get("bytes")
                    await socket.receive(message.get("text") if data is None else None, data)
                elif kind == "websocket.disconnect":
                    break
        finally:
            headroom.give_back()
            await socket.close()
        return None

    @staticmethod
    def slug(scope: dict[str, Any]) -> str | None:
        """The queue slug of a ``ws/queue/<slug>/`` path (under the scope's root_path)."""
        return path_slug(scope, PATH)


_ready = False


def ready_for_a_burst() -> None:
    """Once per process, before its first socket (making ``QueueSocketApp`` or the
    consumer's ASGI application calls it): load the store backend and its client
    library, which the first socket would otherwise load in the middle of the burst (a third
    of a second of CPU per process), then move everything loaded so far out of the garbage
    collector's full collections (``gc.freeze``), which in a burst of 1,000 joins per process
    took a fifth of its CPU going over Django's and the libraries' own objects again and
    again."""
    global _ready
    if _ready:
        return
    _ready = True
    queue_settings.STORE  # noqa: B018 - the import is the point
    gc.freeze()


def path_slug(scope: dict[str, Any], pattern: re.Pattern[str]) -> str | None:
    """The ``slug`` group of ``pattern`` matched against the scope's path, below its
    root_path; None when it does not match."""
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    match = pattern.fullmatch(path.removeprefix("/"))
    return match["slug"] if match else None


#: Origin header values whose check an OriginCheck remembers: a crowd comes from the site's
#: own pages, so a few values answer nearly every handshake, and a bounded cache cannot be
#: grown by a client sending new ones.
ORIGINS_KEPT = 64


class OriginCheck:
    """channels' ``AllowedHostsOriginValidator`` check of a handshake's Origin header value
    (None: no header): the allowed origins are ALLOWED_HOSTS (plus localhost under DEBUG with
    none), read when this is made, exactly as for the consumer. The answers for the last
    ORIGINS_KEPT values are remembered: parsing and matching the value was about 3% of a
    handshake's CPU in a connection storm."""

    def __init__(self) -> None:
        validator = AllowedHostsOriginValidator(None)  # used for its checks only

        @functools.lru_cache(maxsize=ORIGINS_KEPT)
        def allowed(value: bytes | None) -> bool:
            # Parsed as channels' OriginValidator parses it.
            parsed = None if value is None else urlparse(value.decode("latin1"))
            return bool(validator.valid_origin(parsed))

        self._allowed = allowed

    def __call__(self, value: bytes | None) -> bool:
        return self._allowed(value)


def _origin(scope: dict[str, Any]) -> bytes | None:
    """The Origin header's value (the last one, as channels reads it); None if absent."""
    origin = None
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            origin = value
    return origin


async def socket_identity(scope: dict[str, Any]) -> str | None:
    """The socket's identity: the scope's user, else the session's, else the visitor's."""
    cookies = scope_cookies(scope)
    if "user" in scope:  # set by a middleware around this application
        return identity_for(scope["user"], cookies)
    session_key = cookies.get(settings.SESSION_COOKIE_NAME)
    if session_key:
        identity = await in_thread(_session_identity)(session_key)
        if identity is not None:
            return identity
    return identity_for(None, cookies)


def _session_identity(session_key: str) -> str | None:
    """The logged-in user of a session, checked as Django checks it (backend, session hash)."""
    from django.contrib.auth import get_user

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return user_identity(get_user(SimpleNamespace(session=store)))
