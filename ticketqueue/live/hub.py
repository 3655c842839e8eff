"""One process's live fan-out: per queue, one subscription and the seats of the local sockets.

A broadcast arrives once per process and is applied to every local seat in memory: a tick moves
each waiting seat's position by what it carries (no store call), and the frames are written
straight to the sockets. Per-entry messages (granted, revoked, left) reach the seats of their
identity: every tab and device of one identity shares one entry and hears everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from channels.db import database_sync_to_async

from .. import limits, services
from ..conf import queue_settings
from ..core import (
    DeviceReplaced,
    EntryNotFound,
    EntryState,
    LineMove,
    QueueState,
    Throttled,
    TicketQueueError,
    estimate_eta,
    moved_place,
)
from . import settle, transport
from .batches import Batches
from .protocol import (
    CLOSE_DEVICE,
    CLOSE_QUEUE_CLOSED,
    PREPARED,
    closed_frame,
    ended_frame,
    error_frame,
    granted_frame,
    line_frame,
    milestone_frame,
    prepared_text_frame,
    update_frame_head,
    update_frame_tail,
)

__all__ = ["Hub", "Room", "Seat", "get_hub", "shutdown"]

log = logging.getLogger("ticketqueue.live")

# The states a seat and a queue are compared with, as plain strings: compared per socket on
# every tick, where an enum member's lookup would cost more than the comparison.
WAITING, ADMITTED = EntryState.WAITING.value, EntryState.ADMITTED.value
OPEN, CLOSED = QueueState.OPEN.value, QueueState.CLOSED.value
SCHEDULED = QueueState.SCHEDULED.value

Send = Callable[[dict[str, Any]], Awaitable[None]]

#: What a frame waiting behind a slow reader is: news (never replaced), a queue_update or a
#: line frame (each replaced by the next of its kind).
NEWS, UPDATE, LINE = 0, 1, 2
#: A line fan-out may take about this share of a process's time: the next one starts no
#: sooner than the last one's duration over this share (besides UPDATE_INTERVAL), though never
#: later than LINE_SPACING_CAP times UPDATE_INTERVAL. A process short of CPU (a fan-out takes
#: longer) thus spaces its updates out for every socket alike, leaving time for the rest of
#: its work, instead of falling ever further behind; the cap keeps a fan-out slowed by a
#: connection storm from spacing the next ones out for long.
LINE_DUTY = 0.25
LINE_SPACING_CAP = 2.0
#: Most sockets whose connect-time reads one store batch makes (Room.opening).
OPEN_BATCH = 500
#: Most joins one batch makes (Room.joining): one INSERT of this many rows at most (under
#: SQLite's oldest limit of 999 parameters).
JOIN_BATCH = 100
#: Seats handled between two yields to the event loop during a fan-out.
FANOUT_SLICE = 500
#: Most seats whose exact position one resync pass reads from the store.
RESYNC_BATCH = 500
#: Seconds between two resync passes of a room.
RESYNC_PERIOD = 0.5
#: After a read, the next one comes this fraction of RESYNC_INTERVAL later (a check that the
#: read and the broadcasts around it did not overlap) ...
FOLLOW_UP = (0.02, 0.05)
#: ... then every RESYNC_INTERVAL times a factor in this range, so the reads spread out.
SPREAD = (0.75, 1.25)
#: Seconds between two reads of the queue's row (its knobs, for the wait estimate).
QUEUE_REFRESH = 60.0
#: How a waiting seat's frame ends when the stock will likely run out before its turn.
LIKELY_END = ',"sold_out_likely":true}'
#: Seconds over which every seat reads its new place after the pre-queue draw.
DRAW_RESYNC_WINDOW = 5.0


def run_eagerly(coro: Any) -> asyncio.Future[Any] | None:
    """Run ``coro`` now, up to its first real suspension; None when it finished at once.

    An ASGI send to a socket whose buffer has room completes without suspending (daphne's
    always does): running it inline costs no task, which is what makes a 10,000-seat fan-out
    cheap. A send that must wait (a slow reader) goes on in a task of its own, so it never
    holds up the rest of the fan-out.
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_resume(coro, yielded))


async def _resume(coro: Any, yielded: Any) -> None:
    # Drive the coroutine as a task would, with public calls only (the generator protocol,
    # asyncio.wait): wait for the future it yielded (a bare yield: one loop pass), then go on;
    # the coroutine reads that future's result or exception itself when resumed.
    try:
        while True:
            if yielded is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait([yielded])
            try:
                yielded = coro.send(None)
            except StopIteration:
                return
    except asyncio.CancelledError:
        coro.close()
        raise


class Seat:
    """One socket's view of its identity's entry, kept in memory and moved by broadcasts."""

    __slots__ = (
        "_backlog",
        "_base_send",
        "_write_prepared",
        "_inflight",
        "closed",
        "dirty",
        "eta",
        "expires_at",
        "follows",
        "identity",
        "joining",
        "last_update",
        "order",
        "pass_token",
        "position",
        "admitted_seen",
        "departed_seen",
        "device",
        "resync_at",
        "room",
        "sent",
        "seq",
        "state",
        "touched",
    )

    def __init__(
        self, identity: str, send: Send, device: str | None = None, *, follows: bool = False
    ) -> None:
        self.identity = identity
        self.device = device  # its digest, for a queue with one device per person
        #: Protocol version 2: the client moves its own place by the room's ``line`` frames;
        #: the hub keeps only what its last exact read said.
        self.follows = follows
        self._base_send = send
        # The server's own way to write a prepared frame at once, if it has one (ticketqueue's
        # uvicorn protocol: live/uvicorn.py), found on the ASGI send it bound.
        self._write_prepared = getattr(getattr(send, "__self__", None), "write_prepared", None)
        self.room: Room | None = None
        self.state: str | None = None  # None, WAITING or ADMITTED
        self.seq: int | None = None
        self.order: float | None = None
        self.position: int | None = None
        #: The admission count the position already reflects (None: unknown, trust "n").
        self.admitted_seen: int | None = None
        #: The number of the last departure the position already reflects (None: unknown,
        #: count every departure a tick carries).
        self.departed_seen: int | None = None
        self.eta: int | None = None
        self.pass_token: str | None = None
        self.expires_at: float | None = None
        self.last_update = -math.inf
        self.sent: str | None = None  # the last queue_update frame sent
        self.dirty = False
        self.resync_at = math.inf
        self.touched = -math.inf
        self.joining = False  # its own join is in flight: the reply, not the broadcast, answers
        self.closed = False
        self._inflight: asyncio.Future[Any] | None = None
        self._backlog: list[tuple[int, dict[str, Any]]] = []  # (NEWS/UPDATE/LINE, message)

    # -- writing to the socket, in order, never waiting on a slow reader --------------------
    def send_text(self, text: str, *, update: bool = False) -> None:
        self.send_message({"type": "websocket.send", "text": text}, kind=UPDATE if update else NEWS)

    def send_message(self, message: dict[str, Any], *, kind: int = NEWS) -> bool:
        """Write ``message`` now, or after the frames the socket is still busy with. A frame
        queued right behind one of its kind replaces it; False when it replaced a ``line``
        frame (its departures are lost to the client: the caller reads the seat again)."""
        if self.closed:
            return True
        if self._inflight is not None:
            # The socket is still busy with an earlier frame: keep the order, and let a
            # queue_update replace one queued right before it (the newer one says it all).
            if kind != NEWS and self._backlog and self._backlog[-1][0] == kind:
                self._backlog[-1] = (kind, message)
                return kind != LINE
            self._backlog.append((kind, message))
            return True
        self._start(message)
        return True

    def send_line(self, message: dict[str, Any]) -> bool:
        """A ``line`` frame (with its PREPARED bytes): written straight through the server's
        ``write_prepared`` when it has one and nothing is queued ahead, else as any frame;
        False when it replaced a queued line frame (see send_message)."""
        write = self._write_prepared
        ready = write is not None and self._inflight is None and not self.closed
        if ready and write(message[PREPARED]):
            return True
        return self.send_message(message, kind=LINE)

    def _start(self, message: dict[str, Any]) -> None:
        try:
            pending = run_eagerly(self._base_send(message))
        except Exception:  # the socket is gone (uvicorn raises ClientDisconnected)
            self.closed = True
            return
        if pending is not None:
            self._inflight = pending
            pending.add_done_callback(self._sent)

    def _sent(self, future: asyncio.Future[Any]) -> None:
        self._inflight = None
        if future.cancelled() or future.exception() is not None:
            self.closed = True
            return
        queued, self._backlog = self._backlog, []
        for kind, message in queued:
            self.send_message(message, kind=kind)

    def close(self, code: int) -> None:
        self.send_message({"type": "websocket.close", "code": code})
        self.closed = True  # after it: nothing more is written to this socket

    # -- what the seat says ---------------------------------------------------------------
    def update_frame(self, room: Room) -> str:
        waiting = self.state == WAITING
        seen = None
        if self.follows and waiting:
            seen = (self.order, self.admitted_seen, self.departed_seen)
        return room.frame_head() + update_frame_tail(
            state=self.state,
            position=self.position if waiting else None,
            eta_seconds=self.eta if waiting else None,
            sold_out_likely=waiting and room.sold_out_likely(self.position),
            seen=seen,
        )

    def granted_frame(self) -> str:
        return granted_frame(token=self.pass_token, expires_at=self.expires_at, seq=self.seq)


class Room:
    """One queue in one process: its seats, by identity, and what the last broadcast said."""

    def __init__(self, hub: Hub, queue: Any) -> None:
        self.hub = hub
        self.queue = queue
        self.queue_id: str = queue.store_id
        self.slug: str = queue.slug
        self.channel = transport.channel_name(self.queue_id)
        self.seats: set[Seat] = set()
        #: The seats speaking protocol version 2: one shared ``line`` frame moves them all. In
        #: the order they came (a dict, not a set, whose order a resize reshuffles): each
        #: fan-out reaches a socket at the same point of its course as the last one did, so
        #: its gap stays the spacing between fan-outs, however long they take.
        self.followers: dict[Seat, None] = {}
        self.by_identity: dict[str, set[Seat]] = {}
        self.dirty: set[Seat] = set()
        self.queue_state: str = queue.state
        #: The pre-queue draw was seen (scheduled -> open): every waiting seat's place is
        #: unknown until its own read after the draw.
        self.drawn = False
        self.waiting = 0
        self.active = 0
        self.rate: float | None = None
        #: What the site said it can still sell (None: unknown), from ticks and reads.
        self.stock: int | None = None
        self.queue_stale = False
        self._head_key: tuple[str, int, int] | None = None
        self._head = ""
        self._flush_handle: asyncio.TimerHandle | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._resyncing = False
        self._refreshed_at = hub.clock()
        # The next line frame: what the ticks since the last one said (see _line_news).
        self._line_news = False
        self._line_admitted: int | None = None
        self._line_departed: list[float] = []
        self._line_departed_total: int | None = None
        self._line_at = -math.inf
        self._line_spacing = 0.0  # the last fan-out's duration over LINE_DUTY
        self._line_task: asyncio.Task[None] | None = None
        #: Identities whose sockets said heartbeat since the last flush (flush_heartbeats).
        self._heard: set[str] = set()
        self._flushing = asyncio.Lock()  # once it returns, every heartbeat before is written
        # Sockets of this room waiting for their connect-time read (opening) or their join.
        self._openings: Batches[tuple[str, str], services.Status] = Batches(
            hub.loop, lambda batch: _open_many(self.queue, batch), OPEN_BATCH
        )
        self._joins: Batches[tuple[str, str], services.Status] = Batches(
            hub.loop, lambda batch: _join_many(self.queue, batch), JOIN_BATCH
        )

    # -- membership -------------------------------------------------------------------------
    def add(self, seat: Seat) -> None:
        seat.room = self
        self.seats.add(seat)
        if seat.follows:
            self.followers[seat] = None
        self.by_identity.setdefault(seat.identity, set()).add(seat)
        if self._resync_task is None:
            self._resync_task = self.hub.loop.create_task(self._resync_loop())

    def remove(self, seat: Seat) -> None:
        self.seats.discard(seat)
        self.followers.pop(seat, None)
        self.dirty.discard(seat)
        same = self.by_identity.get(seat.identity)
        if same is not None:
            same.discard(seat)
            if not same:
                del self.by_identity[seat.identity]

    def stop(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._resync_task is not None:
            self._resync_task.cancel()
            self._resync_task = None
        if self._line_task is not None:
            self._line_task.cancel()
            self._line_task = None

    # -- sending updates, coalesced -----------------------------------------------------------
    def offer_update(
        self,
        seat: Seat,
        *,
        now: float | None = None,
        force: bool = False,
        interval: float | None = None,
    ) -> None:
        """Send the seat's queue_update now, or as soon as UPDATE_INTERVAL allows."""
        if seat.closed:
            return
        self._offer(seat, seat.update_frame(self), now, force, interval)

    def _offer(
        self, seat: Seat, frame: str, now: float | None, force: bool, interval: float | None
    ) -> None:
        if frame == seat.sent and not force:
            if seat.dirty:
                seat.dirty = False
                self.dirty.discard(seat)
            return
        now = self.hub.clock() if now is None else now
        if interval is None:
            interval = float(queue_settings.UPDATE_INTERVAL)
        due = seat.last_update + interval
        if force or now >= due:
            seat.send_text(frame, update=True)
            seat.sent = frame
            seat.last_update = now
            if seat.dirty:
                seat.dirty = False
                self.dirty.discard(seat)
            return
        if not seat.dirty:
            seat.dirty = True
            self.dirty.add(seat)
        self._schedule_flush(due - now)

    def sold_out_likely(self, position: int | None) -> bool:
        return position is not None and services.sold_out_likely(position, self.active, self.stock)

    def frame_head(self) -> str:
        key = (self.queue_state, self.waiting, self.active)
        if key != self._head_key:
            self._head_key = key
            self._head = update_frame_head(
                queue_state=self.queue_state, waiting=self.waiting, active=self.active
            )
        return self._head

    def _schedule_flush(self, delay: float) -> None:
        if self._flush_handle is None:
            self._flush_handle = self.hub.loop.call_later(max(0.0, delay), self.flush)

    def flush(self) -> None:
        """Send the updates that UPDATE_INTERVAL held back, once each seat's interval is over."""
        self._flush_handle = None
        now = self.hub.clock()
        interval = float(queue_settings.UPDATE_INTERVAL)
        soonest = math.inf
        for seat in list(self.dirty):
            due = seat.last_update + interval
            if now >= due:
                seat.dirty = False
                self.dirty.discard(seat)
                self.offer_update(seat, now=now)
            else:
                soonest = min(soonest, due)
        if self.dirty and soonest < math.inf:
            self._schedule_flush(soonest - now)

    # -- the truth from the store -----------------------------------------------------------
    def apply_status(self, seat: Seat, status: services.Status, *, reply: bool = False) -> None:
        """Set the seat from an exact status read; ``reply`` answers even if nothing changed."""
        now = self.hub.clock()
        if self._read_before_the_draw(status):
            self.schedule_resync(seat, now, follow_up=True)
            return
        self.queue_state = status.queue_state
        self.waiting, self.active, self.stock = status.waiting, status.active, status.stock
        if status.state == ADMITTED:
            self.grant(seat, status.seq, status.pass_token, status.pass_expires_at, force=reply)
        else:
            seat.state = status.state
            seat.seq = status.seq
            seat.order = status.order
            seat.position = status.position
            seat.admitted_seen = status.admitted_total
            seat.departed_seen = status.departed_total
            seat.eta = status.eta_seconds
            seat.pass_token = seat.expires_at = None
            self.offer_update(seat, now=now, force=reply)
        if status.queue_state == CLOSED and seat.state != ADMITTED:
            self.tell_closed(seat)
        self.schedule_resync(seat, now, follow_up=True)

    def _read_before_the_draw(self, status: services.Status) -> bool:
        """A read that was in flight when the draw was seen: its place is the old one."""
        return self.drawn and status.queue_state == SCHEDULED and status.state == WAITING

    def schedule_resync(self, seat: Seat, now: float, *, follow_up: bool = False) -> None:
        interval = float(queue_settings.RESYNC_INTERVAL)
        factor = random.uniform(*(FOLLOW_UP if follow_up else SPREAD))  # noqa: S311
        seat.resync_at = now + interval * factor

    def grant(
        self,
        seat: Seat,
        seq: int | None,
        token: str | None,
        expires_at: float | None,
        *,
        force: bool = False,
    ) -> None:
        """Give the seat its pass; sent at once, never coalesced."""
        fresh = seat.state != ADMITTED or seat.pass_token != token
        seat.state, seat.seq, seat.pass_token, seat.expires_at = ADMITTED, seq, token, expires_at
        seat.position = seat.eta = None
        seat.sent = seat.update_frame(self)
        if seat.dirty:
            seat.dirty = False
            self.dirty.discard(seat)
        if fresh or force:
            seat.send_text(seat.granted_frame())

    def end(self, seat: Seat, kind: str, reason: str) -> None:
        """The seat's entry ended: tell it why (``revoked`` or ``left``)."""
        seat.state = seat.seq = seat.order = seat.position = seat.eta = None
        seat.pass_token = seat.expires_at = None
        seat.send_text(ended_frame(kind, reason))
        seat.sent = seat.update_frame(self)

    def tell_closed(self, seat: Seat) -> None:
        seat.send_text(closed_frame())
        if seat.state != ADMITTED:
            seat.close(CLOSE_QUEUE_CLOSED)

    # -- broadcasts ---------------------------------------------------------------------------
    async def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("k")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            log.warning("live: unknown broadcast %r", kind)
            return
        result = handler(message)
        if result is not None:
            await result

    async def _on_tick(self, message: dict[str, Any]) -> None:
        total: int | None = message.get("t")
        # Departures in the order they left, numbered up to the departed total "dt" (without
        # "dt": an older publisher's, unnumbered).
        departed: list[float] = message["d"]
        departed_total: int | None = message.get("dt")
        now = self.hub.clock()
        if message["s"] == OPEN and self.queue_state == SCHEDULED:
            self._draw_seen(now)  # this tick's publisher got here before the state message
        self.waiting, self.active = message["w"], message["a"]
        self.queue_state = message["s"]
        self.rate = message["r"]
        self.stock = stock = message.get("st")
        if self.followers:
            self._line_news_from(total, departed, departed_total)
        if len(self.followers) == len(self.seats):
            return  # every socket here follows the line frames itself
        move = LineMove(message["n"], total, departed, departed_total)
        active = self.active
        interval = float(queue_settings.UPDATE_INTERVAL)
        rate = self.rate
        head = self.frame_head()
        offer = self._offer
        for i, seat in enumerate(list(self.seats)):
            state = seat.state
            if state == ADMITTED or seat.closed or seat.follows:
                continue  # a pass holder: the line's figures are no news to it
            position = seat.position
            if state == WAITING and position is None and self.drawn:
                continue  # its place after the draw is on its way: no old place moved
            if state == WAITING and position is not None:
                position, seat.admitted_seen, seat.departed_seen = moved_place(
                    position, seat.order, seat.admitted_seen, seat.departed_seen, move
                )
                seat.position = position
                eta = seat.eta = estimate_eta(position, rate, None) if rate else seat.eta
                # The frame of a waiting seat, built inline: this loop runs once per socket.
                # services.sold_out_likely, inlined (a call per socket is what this loop avoids):
                # the pass holders and the people ahead are at least the stock left.
                end = LIKELY_END if stock is not None and active + position > stock else "}"
                frame = (
                    f'{head}"state":"waiting","position":{position},'
                    f'"eta_seconds":{"null" if eta is None else eta}{end}'
                )
            else:
                frame = seat.update_frame(self)
            offer(seat, frame, now, False, interval)
            if i % FANOUT_SLICE == FANOUT_SLICE - 1:
                await asyncio.sleep(0)  # let the sockets' own frames in between slices

    # -- protocol version 2: one line frame for every follower ----------------------------------
    def _line_news_from(
        self, admitted_total: int | None, departed: list[float], departed_total: int | None
    ) -> None:
        """Add a tick to the next line frame. Its departures join the ones not sent yet when
        their numbers follow on; otherwise (a number jumped, after a store loss) the older
        ones are dropped, so no order is ever sent under a wrong number: a client that misses
        them only believes its place is further back until its next read."""
        if departed_total is not None:
            first = departed_total - len(departed) + 1
            if first != (self._line_departed_total or 0) + 1 and self._line_departed:
                self._line_departed = []
            self._line_departed.extend(departed)
            self._line_departed_total = departed_total
        self._line_admitted = admitted_total
        self._line_news = True
        if self._line_task is None:
            self._line_task = self.hub.loop.create_task(self._send_lines())

    def _take_line_frame(self) -> str:
        frame = line_frame(
            queue_state=self.queue_state,
            waiting=self.waiting,
            active=self.active,
            admitted_total=self._line_admitted,
            departed=self._line_departed,
            departed_total=self._line_departed_total,
            rate=self.rate,
            stock=self.stock,
        )
        self._line_departed = []
        self._line_news = False
        return frame

    async def _send_lines(self) -> None:
        """Send the line frame to every follower, at most once per UPDATE_INTERVAL.

        The frame is made once and the same message goes to every socket. Ticks that arrive
        while a fan-out runs go into the next frame, which starts when this one is done and
        its interval is over: when a process cannot keep up, every socket's updates come a
        little later, evenly, rather than some sockets' very late.
        """
        try:
            while self._line_news:
                interval = float(queue_settings.UPDATE_INTERVAL)
                spacing = min(max(interval, self._line_spacing), LINE_SPACING_CAP * interval)
                wait = self._line_at + spacing - self.hub.clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._line_at = now = self.hub.clock()
                text = self._take_line_frame()
                message = {
                    "type": "websocket.send",
                    "text": text,
                    PREPARED: prepared_text_frame(text),
                }
                for i, seat in enumerate(list(self.followers)):
                    # A pass holder needs no line; a slow reader that lost a line frame's
                    # departures (send_message False) is read again soon.
                    waiting = seat.state != ADMITTED and not seat.closed
                    if waiting and not seat.send_line(message):
                        self.schedule_resync(seat, now, follow_up=True)
                    if i % FANOUT_SLICE == FANOUT_SLICE - 1:
                        await asyncio.sleep(0)
                self._line_spacing = (self.hub.clock() - now) / LINE_DUTY
        finally:
            self._line_task = None

    def _each(self, items: Iterable[list[Any]]) -> Iterable[tuple[Seat, list[Any]]]:
        for item in items:
            for seat in list(self.by_identity.get(item[0], ())):
                yield seat, item

    def _on_granted(self, message: dict[str, Any]) -> None:
        for seat, (_, seq, token, expires_at) in self._each(message["items"]):
            self.grant(seat, seq, token, expires_at)

    def _on_milestone(self, message: dict[str, Any]) -> None:
        """People reached a milestone (``ticketqueue.milestones``): each of their seats hears
        it once, at once (it is news, never coalesced)."""
        extra = {k: message[k] for k in ("within", "minutes") if k in message}
        for seat, item in self._each(message["items"]):
            if seat.seq == item[1]:
                details = {**extra, "expires_at": item[2]} if len(item) > 2 else extra
                seat.send_text(milestone_frame(message["m"], **details))

    def _on_revoked(self, message: dict[str, Any]) -> None:
        self._end_entries(message, "revoked")

    def _on_left(self, message: dict[str, Any]) -> None:
        self._end_entries(message, "left")

    def _end_entries(self, message: dict[str, Any], kind: str) -> None:
        for seat, (_, seq) in self._each(message["items"]):
            if seat.seq == seq:  # not a newer entry of the same identity
                self.end(seat, kind, message["reason"])

    def _on_joined(self, message: dict[str, Any]) -> None:
        self.waiting += 1  # a new entry at the back; the next tick brings the exact count
        now = self.hub.clock()
        for seat in list(self.by_identity.get(message["identity"], ())):
            if not seat.joining and (seat.seq != message["seq"] or seat.state != WAITING):
                seat.state, seat.seq = WAITING, message["seq"]
                seat.order, seat.position = message["order"], message["position"]
                # The totals read with the join's position (None from an older publisher).
                seat.admitted_seen = message.get("t")
                seat.departed_seen = message.get("dt")
                seat.eta = estimate_eta(seat.position, self.rate, None) if self.rate else None
                self.offer_update(seat, now=now, force=True)
                self.schedule_resync(seat, now, follow_up=True)

    def _on_device(self, message: dict[str, Any]) -> None:
        """One device per person: the identity's place moved to ``device``; its sockets on
        other devices are told and closed (the widget offers to take it back)."""
        for seat in list(self.by_identity.get(message["identity"], ())):
            if seat.device != message["device"]:
                seat.send_text(error_frame(DeviceReplaced()))
                seat.close(CLOSE_DEVICE)

    def _on_closed(self, message: dict[str, Any]) -> None:
        self.queue_state = CLOSED
        for seat in list(self.seats):
            if seat.state == WAITING:
                self.end(seat, "revoked", "closed")
            self.tell_closed(seat)

    def _on_state(self, message: dict[str, Any]) -> None:
        now = self.hub.clock()
        if message.get("previous") == SCHEDULED and message["state"] == OPEN:
            self._draw_seen(now)
        self.queue_state = message["state"]
        self.queue_stale = True
        for seat in list(self.seats):
            self.offer_update(seat, now=now)

    def _draw_seen(self, now: float) -> None:
        """The pre-queue was drawn: every waiting place changed. A seat forgets its old place
        (it would otherwise be moved by the first admissions, and some told "you're next"
        would fall back) and shows none until its read after the draw, spread over a few
        seconds; ticks meanwhile move nobody whose place is unknown."""
        if self.drawn:
            return  # the state message and a tick both say so: once
        self.drawn = True
        for seat in self.seats:
            if seat.state == WAITING:
                seat.position = seat.eta = None
                seat.admitted_seen = seat.departed_seen = None
                if seat.follows:  # told by its own frame: the line frames carry no places
                    self.offer_update(seat, now=now)
            seat.resync_at = min(seat.resync_at, now + random.uniform(0, DRAW_RESYNC_WINDOW))  # noqa: S311

    def resync_all(self) -> None:
        """Broadcasts may have been lost (the subscription dropped): read every seat again."""
        now = self.hub.clock()
        for seat in self.seats:
            seat.resync_at = min(seat.resync_at, now + random.uniform(0, DRAW_RESYNC_WINDOW))  # noqa: S311

    # -- connecting, batched -----------------------------------------------------------------
    async def opening(self, identity: str, address: str) -> services.Status:
        """A new socket's connect-time work: its connection limits (``connect_ip``,
        ``connect_identity``: raises Throttled), then present, its status, and its waiting
        entry seen. Done for all the sockets of this room that connect at the same moment
        together, in four store round trips and one thread hop (per socket, at 1,000
        handshakes a second, that was most of a handshake's cost)."""
        return await self._openings.ask((identity, address))

    async def joining(self, identity: str, address: str) -> services.Status:
        """A socket's join, in a queue whose places need nothing but the identity
        (``services.asks_only_identity``): its join limits (``join_ip``, ``join_identity``:
        raises Throttled), then its place, its row committed before this returns. Done for all
        the joins of this room at the same moment together (``services.join_many``): two store
        round trips, one INSERT and one thread hop for all of them."""
        return await self._joins.ask((identity, address))

    # -- heartbeats, batched ----------------------------------------------------------------
    def heard(self, seat: Seat) -> None:
        """The seat's client said heartbeat: recorded with the others at the next flush."""
        self._heard.add(seat.identity)

    async def flush_heartbeats(self) -> None:
        """Mark everyone heard since the last flush present and their entries seen, in two
        store round trips for the whole process (one per heartbeat would be 4,000 a second
        at 100,000 sockets); a waiting seat whose entry the store no longer holds is told."""
        async with self._flushing:
            if not self._heard:
                return
            identities, self._heard = sorted(self._heard), set()
            gone = await _heartbeats(self.queue, identities)
        for identity in gone:
            for seat in list(self.by_identity.get(identity, ())):
                if seat.state == WAITING:
                    seat.send_text(error_frame(EntryNotFound()))

    # -- resync: the exact position, now and then ---------------------------------------------
    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_PERIOD)
            try:
                await self.flush_heartbeats()
                await self.resync_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("live: resync failed", extra={"queue": self.queue_id}, exc_info=True)

    async def resync_due(self) -> int:
        """Read the exact status of the seats whose resync is due; returns how many seats."""
        if self._resyncing:
            return 0
        now = self.hub.clock()
        if now - self._refreshed_at >= QUEUE_REFRESH:
            self.queue_stale, self._refreshed_at = True, now
        due = [s for s in self.seats if s.resync_at <= now and not s.closed]
        if not due and not self.queue_stale:
            return 0
        due.sort(key=lambda s: s.resync_at)
        due = due[:RESYNC_BATCH]
        identities = sorted({s.identity for s in due})
        self._resyncing = True
        try:
            for seat in due:  # not again before this read is done
                self.schedule_resync(seat, now)
            queue, statuses = await _read_statuses(self.queue, identities, self.queue_stale)
            self.queue, self.queue_stale = queue, False
        finally:
            self._resyncing = False
        for seat in due:
            status = statuses.get(seat.identity)
            if status is not None and seat in self.seats:
                self._apply_resync(seat, status)
        return len(due)

    def _apply_resync(self, seat: Seat, status: services.Status) -> None:
        now = self.hub.clock()
        if self._read_before_the_draw(status):
            self.schedule_resync(seat, now, follow_up=True)
            return
        if status.state == ADMITTED:
            self.grant(seat, status.seq, status.pass_token, status.pass_expires_at)
        elif status.state == WAITING:
            seat.state, seat.seq, seat.order = WAITING, status.seq, status.order
            seat.position, seat.eta = status.position, status.eta_seconds
            seat.admitted_seen = status.admitted_total
            seat.departed_seen = status.departed_total
            self.offer_update(seat, now=now)
        elif seat.state is not None:
            # The entry ended and the message was lost: say there is no entry any more.
            seat.state = seat.seq = seat.order = seat.position = seat.eta = None
            seat.pass_token = seat.expires_at = None
            self.offer_update(seat, now=now)
        self.schedule_resync(seat, now)


def _statuses(queue: Any, identities: list[str], refresh: bool) -> tuple[Any, dict[str, Any]]:
    if refresh:
        # A new row, not refresh_from_db(): other threads read the room's row meanwhile.
        queue = type(queue).objects.get(pk=queue.pk)
    try:
        return queue, services.statuses(queue, identities)
    except TicketQueueError:  # the store is rebuilding the queue: read again later
        return queue, {}


_read_statuses = database_sync_to_async(_statuses, thread_sensitive=False)
_heartbeats = database_sync_to_async(services.heartbeats, thread_sensitive=False)


def _within_limits(
    queue: Any,
    requests: list[tuple[str, str]],
    scopes: tuple[str, str],
    answer: Callable[[list[str]], list[Any]],
) -> list[Any]:
    """A batch of (identity, address) requests: the limits ``scopes`` (per address, per
    identity) of every one first, then ``answer`` for the identities they let through (one
    answer each, in order); Throttled for the others."""
    by_address, by_identity = scopes
    hits = [[(by_address, address), (by_identity, identity)] for identity, address in requests]
    waits = limits.wait_for_many(queue.store_id, hits)
    allowed = [
        identity for (identity, _), wait in zip(requests, waits, strict=True) if wait is None
    ]
    answers = iter(answer(allowed) if allowed else [])
    return [Throttled(wait=wait) if wait is not None else next(answers) for wait in waits]


def _connect_many(
    queue: Any, requests: list[tuple[str, str]]
) -> list[services.Status | BaseException]:
    """Room.opening's batch: the connection limits, then presence and status."""

    def open_connections(identities: list[str]) -> list[services.Status]:
        statuses = services.open_connections(queue, identities)
        return [statuses[identity] for identity in identities]

    return _within_limits(queue, requests, ("connect_ip", "connect_identity"), open_connections)


def _join_all(queue: Any, requests: list[tuple[str, str]]) -> list[services.Status | BaseException]:
    """Room.joining's batch: the join limits, then the places."""
    return _within_limits(
        queue, requests, ("join_ip", "join_identity"), lambda ids: services.join_many(queue, ids)
    )


_open_many = database_sync_to_async(_connect_many, thread_sensitive=False)
_join_many = database_sync_to_async(_join_all, thread_sensitive=False)
_get_queue = database_sync_to_async(services.get_queue, thread_sensitive=False)


class Hub:
    """The live fan-out of one event loop (one per ASGI process): rooms by queue id."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.clock: Callable[[], float] = time.monotonic
        self.rooms: dict[str, Room] = {}
        self._by_channel: dict[str, Room] = {}
        self._by_slug: dict[str, Room] = {}
        self._subscriber = transport.make_subscriber(self._deliver)
        self._inbox: asyncio.Queue[tuple[str | None, bytes | None]] = asyncio.Queue()
        self._worker = loop.create_task(self._work())
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self._lookups: dict[str, asyncio.Task[Any]] = {}
        self._closed = False
        # Sockets seated and unseated so far, for the memory settles (live/settle.py).
        self.opened = self.closed = 0
        self._settler = loop.create_task(self._settle())

    async def queue_for_slug(self, slug: str) -> Any:
        """The queue named ``slug``: its room's row when this process has the room (kept
        fresh by the room: no query per socket), else read once for every socket that asks
        at the same moment. Raises QueueNotFound.

        At 10:00:00 a thousand handshakes reach a process before its room exists; one query
        each would fill the thread pool ahead of their joins."""
        room = self._by_slug.get(slug)
        if room is not None:
            return room.queue
        lookup = self._lookups.get(slug)
        if lookup is None:
            lookup = self._lookups[slug] = self.loop.create_task(_get_queue(slug))
            lookup.add_done_callback(functools.partial(self._looked_up, slug))
        return await asyncio.shield(lookup)

    def _looked_up(self, slug: str, lookup: asyncio.Task[Any]) -> None:
        if self._lookups.get(slug) is lookup:
            del self._lookups[slug]
        if not lookup.cancelled():
            lookup.exception()  # retrieved: each socket that asked raises it as its own

    async def attach(self, queue: Any, seat: Seat) -> Room:
        """Seat this socket in the queue's room; subscribed for real before this returns."""
        queue_id = queue.store_id
        room = self.rooms.get(queue_id)
        if room is None:
            room = self.rooms[queue_id] = Room(self, queue)
            self._by_channel[room.channel] = room
            self._by_slug[queue.slug] = room
            self._subscribing[queue_id] = self.loop.create_future()
            try:
                await self._subscriber.subscribe(room.channel)
            except BaseException as exc:
                self.rooms.pop(queue_id, None)
                self._by_channel.pop(room.channel, None)
                self._by_slug.pop(queue.slug, None)
                failed = self._subscribing.pop(queue_id)
                if isinstance(exc, asyncio.CancelledError):
                    failed.cancel()
                else:
                    failed.set_exception(exc)
                    failed.exception()  # retrieved: the seats waiting on it raise it again
                raise
            self._subscribing.pop(queue_id).set_result(None)
        elif queue_id in self._subscribing:
            await asyncio.shield(self._subscribing[queue_id])
        room.add(seat)
        self.opened += 1
        return room

    def detach(self, seat: Seat) -> None:
        room = seat.room
        if room is None:
            return
        room.remove(seat)
        seat.closed = True
        self.closed += 1
        if self._closed:  # close() stopped every room and unsubscribed
            return
        if not room.seats and room.queue_id not in self._subscribing:
            room.stop()
            self.rooms.pop(room.queue_id, None)
            self._by_channel.pop(room.channel, None)
            if self._by_slug.get(room.slug) is room:
                del self._by_slug[room.slug]
            self.loop.create_task(self._unsubscribe(room.channel))

    async def _unsubscribe(self, channel: str) -> None:
        if channel in self._by_channel:  # a new seat came in meanwhile
            return
        try:
            await self._subscriber.unsubscribe(channel)
        except Exception:
            log.warning("live: unsubscribe failed", exc_info=True)

    def held(self) -> int:
        """Sockets seated in this process now."""
        return sum(len(room.seats) for room in self.rooms.values())

    async def _settle(self) -> None:
        settler = settle.Settler()
        while True:
            await asyncio.sleep(settle.SETTLE_PERIOD)
            settler.settle(self.opened, self.closed, self.held())

    def _deliver(self, channel: str | None, payload: bytes | None) -> None:
        self._inbox.put_nowait((channel, payload))

    async def _work(self) -> None:
        # One message at a time, in arrival order: a granted is applied before the tick after it.
        while True:
            channel, payload = await self._inbox.get()
            try:
                if channel is None:
                    for room in self.rooms.values():
                        room.resync_all()
                    continue
                room = self._by_channel.get(channel)
                if room is not None and payload is not None:
                    await room.on_message(json.loads(payload))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live: broadcast failed", extra={"channel": channel})

    async def close(self) -> None:
        self._closed = True
        self._worker.cancel()
        self._settler.cancel()
        for room in self.rooms.values():
            room.stop()
        self.rooms.clear()
        self._by_channel.clear()
        self._by_slug.clear()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        with contextlib.suppress(asyncio.CancelledError):
            await self._settler
        await self._subscriber.close()


#: One hub per event loop: an ASGI process has one loop; a test suite makes one per test.
_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def get_hub() -> Hub:
    """The running event loop's hub, made on first use."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for old in [old for old in _hubs if old.is_closed()]:
            del _hubs[old]  # a loop closed without shutdown(): nothing left to run there
        hub = _hubs[loop] = Hub(loop)
    return hub


async def shutdown() -> None:
    """Close the running loop's hub: its subscriptions, rooms and tasks."""
    hub = _hubs.pop(asyncio.get_running_loop(), None)
    if hub is not None:
        await hub.close()
