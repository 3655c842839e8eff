"""Whether this socket process may take one more socket.

A process that runs out of file descriptors fails in ``accept()``, where nobody is told
anything: the kernel's backlog fills, clients time out, and the event loop logs the failure
again and again. So a socket process keeps a reserve: when the descriptors in use (the sockets
it holds, plus everything else it has open, counted from ``/proc/self/fd`` at most once a
second near the limit and every ``FAR_RECOUNT`` seconds further from it) come within
``RESERVE`` of its limit, or it holds ``SOCKETS_PER_PROCESS`` sockets, a new socket is turned
away at the handshake, cheaply (HTTP 503 with ``Retry-After`` where the server lets an
application answer a handshake, else a refusal before accepting), while every socket it holds
is served as before. The refusals are logged at most once a second.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

from ..conf import queue_settings
from ..errors import error_body
from .protocol import ServerBusy

__all__ = ["Headroom", "get_headroom", "refuse"]

log = logging.getLogger("ticketqueue.live")

#: Descriptors kept free for what a socket process opens besides sockets (store and database
#: connections, log files) and for handshakes in flight: the larger of this and 5%.
RESERVE = 64
#: Seconds between two counts of the descriptors while far from the limit (more than twice
#: the reserve away): a count lists /proc/self/fd, 10-25 ms at 16,000 descriptors.
FAR_RECOUNT = 5.0
#: Seconds a refused client is told to wait before it tries again.
RETRY_AFTER = 5


class Headroom:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
        self.reserve = max(RESERVE, self.limit // 20)
        self.held = 0
        self._others = 0  # descriptors open besides the sockets held, as last counted
        self._counted_at = -math.inf
        self._refused = 0
        self._logged_at = -math.inf
        self._lock = threading.Lock()

    def take(self) -> bool:
        """One more socket, if there is room for it; False: refuse it (and count that)."""
        now = self.clock()
        with self._lock:
            near = self._others + self.held >= self.limit - 2 * self.reserve
            if now - self._counted_at >= (1.0 if near else FAR_RECOUNT):
                self._others = max(0, _open_descriptors() - self.held)
                self._counted_at = now
            most = queue_settings.SOCKETS_PER_PROCESS
            full = self._others + self.held >= self.limit - self.reserve or (
                most is not None and self.held >= int(most)
            )
            if not full:
                self.held += 1
                return True
            self._refused += 1
            if now - self._logged_at < 1.0:
                return False
            refused, self._refused, self._logged_at = self._refused, 0, now
        log.warning(
            "sockets refused: this process is full",
            extra={
                "refused": refused,
                "held": self.held,
                "descriptors": self._others + self.held,
                "limit": self.limit,
            },
        )
        return False

    def give_back(self) -> None:
        with self._lock:
            self.held = max(0, self.held - 1)


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one listdir itself opened
    except OSError:
        return 0  # no /proc: only SOCKETS_PER_PROCESS and the sockets held count


async def refuse(scope: dict[str, Any], send: Any) -> None:
    """Turn a handshake away: ``503`` with ``Retry-After`` and ``{code: server_busy}`` where
    the server offers the ``websocket.http.response`` extension (uvicorn), else a close before
    accepting (the server answers 403)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps(error_body(ServerBusy(wait=RETRY_AFTER))).encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(RETRY_AFTER).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close"})


_headroom: Headroom | None = None
_made = threading.Lock()


def get_headroom() -> Headroom:
    global _headroom
    with _made:
        if _headroom is None:
            _headroom = Headroom()
        return _headroom
