"""A client's own place in line, kept from the live protocol's version 2 frames.

Standard library only: the arithmetic every version 2 client does (docs/protocol.md,
"Version 2"), in Python. The widget does the same in JavaScript; a Python client (a kiosk, a
test, a bot you run yourself) can use this one::

    from ticketqueue.place import Place

    place = Place()
    async with websockets.connect(url, subprotocols=["ticketqueue.v2"], ...) as ws:
        async for text in ws:
            place.apply(json.loads(text))
            print(place.state, place.position, place.eta_seconds)

A ``queue_update`` is an exact read of the entry, with the order it stands at and the admitted
and departed totals that read reflects. A ``line`` frame, the same for every socket of the
queue, says how the line moved: the admitted total now, and the orders of the entries that
departed, numbered up to the departed total. The place moves forward by the admissions and by
the departures ahead of it that the last read did not see, never below 1; "your turn" only
ever comes as ``granted``. Anything missed (a frame dropped for a slow reader, a number that
jumped) can only make the place look further back, until the server's next exact read.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

__all__ = ["HISTORY", "Place"]

#: Departures remembered, so an exact read older than the line frames already seen catches up.
HISTORY = 10_000


class Place:
    """One identity's entry in one queue, as a version 2 client keeps it."""

    def __init__(self) -> None:
        # The line, from every frame.
        self.queue_state: str | None = None
        self.waiting: int | None = None
        self.active: int | None = None
        self.rate: float | None = None
        self.stock: int | None = None
        self.admitted_total: int | None = None
        self.departed_total: int | None = None
        self._departures: deque[tuple[int, float]] = deque(maxlen=HISTORY)
        # The entry.
        self.state: str | None = None  # None, "waiting" or "admitted"
        self.position: int | None = None
        self.eta_seconds: int | None = None
        self.sold_out_likely = False
        self.order: float | None = None
        self._admitted_seen: int | None = None
        self._departed_seen: int | None = None
        self._read_in: str | None = None  # the queue state of the last exact read

    def apply(self, message: dict[str, Any]) -> None:
        """Take one server message (decoded JSON) into account; others are ignored."""
        kind = message.get("type")
        if kind == "line":
            self._line(message)
        elif kind == "queue_update":
            self._exact(message)
        elif kind == "granted":
            self.state, self.position, self.eta_seconds = "admitted", None, None
        elif kind in ("revoked", "left"):
            self.state = self.position = self.eta_seconds = self.order = None
        elif kind == "closed":
            self.queue_state = "closed"

    def _exact(self, message: dict[str, Any]) -> None:
        self._figures(message)
        self.state = message.get("state")
        self.position = message.get("position")
        self.eta_seconds = message.get("eta_seconds")
        self.sold_out_likely = message.get("sold_out_likely") is True
        self.order = message.get("order")
        self._admitted_seen = message.get("admitted_total")
        self._departed_seen = message.get("departed_total")
        self._read_in = self.queue_state
        self.admitted_total = _newest(self.admitted_total, self._admitted_seen)
        self._catch_up(False)

    def _line(self, message: dict[str, Any]) -> None:
        self._figures(message)
        self.rate = message.get("rate")
        self.stock = message.get("stock")
        self.admitted_total = _newest(self.admitted_total, message.get("admitted_total"))
        total = message.get("departed_total")
        departed = message.get("departed") or []
        if isinstance(total, int):
            first = total - len(departed) + 1
            last = self._departures[-1][0] if self._departures else -math.inf
            for number, order in enumerate(departed, start=first):
                if number > last:
                    self._departures.append((number, order))
            self.departed_total = _newest(self.departed_total, total)
        if self._read_in == "scheduled" and self.queue_state not in ("scheduled", None):
            # The pre-queue was drawn: every place changed. Unknown until the next read.
            self.position = self.eta_seconds = None
            self._read_in = self.queue_state
        self._catch_up(True)

    def _figures(self, message: dict[str, Any]) -> None:
        for name in ("queue_state", "waiting", "active"):
            if name in message:
                setattr(self, name, message[name])

    def _catch_up(self, news: bool) -> None:
        """Move the place by what the line frames said since the last exact read; with
        ``news`` (a line frame) the wait and the sell-out warning are worked out again."""
        if self.state != "waiting" or self.position is None:
            return
        moved = self._moved()
        if moved:
            self.position = max(1, self.position - moved)
        if moved or news:
            if self.rate:
                self.eta_seconds = math.ceil(self.position / self.rate)
            self.sold_out_likely = (
                self.stock is not None and (self.active or 0) + self.position > self.stock
            )

    def _moved(self) -> int:
        """How many of the people ahead at the last read have gone since; marks them seen."""
        moved = 0
        seen, now = self._admitted_seen, self.admitted_total
        if seen is not None and now is not None and now > seen:
            moved += now - seen
            self._admitted_seen = now
        dseen, dnow = self._departed_seen, self.departed_total
        if dseen is not None and dnow is not None and dnow > dseen:
            order = self.order
            for number, departed in reversed(self._departures):
                if number <= dseen:
                    break
                if order is not None and departed < order:
                    moved += 1
            self._departed_seen = dnow
        return moved


def _newest(current: int | None, other: Any) -> int | None:
    if not isinstance(other, int):
        return current
    return other if current is None else max(current, other)
