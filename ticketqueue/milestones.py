"""Milestones: who in a queue just came within reach of their turn, or near the end of their
pass, and how each of them hears it.

Each queue has four (docs/notifications.md): ``near`` (within ``notify_within`` places of the
front), ``soon`` (about ``notify_minutes_left`` minutes to go, by the line's rate), ``turn``
(the pass: the tick's admissions, ``notifications.notify_turn``) and ``ending`` (the pass ends
in ``notify_pass_ending`` seconds). Once a tick, ``announce`` finds the people who reached
``near``, ``soon`` or ``ending`` since the last one; the present ones (an open socket or
stream) hear it over the live broadcast, the absent ones through the notifiers.

Each person hears each milestone once: a milestone keeps a high-water mark in the store (the
line's order, or a pass's expiry, of the last person it reached), raised atomically, so a
tick only reads who crossed since (O(log n + them)) and two ticks never tell one person twice.
Someone placed ahead of the mark on joining (a priority group) learned their place from the
join itself and is not told again.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import presence, services
from .core import QueueState
from .store import get_store

if TYPE_CHECKING:
    from .models import Queue

__all__ = ["Milestone", "Reached", "announce", "reached"]

log = logging.getLogger("ticketqueue")

#: Most people one milestone reaches in one tick; the next tick goes on from the mark.
BATCH = 5_000
#: How long news for someone still waiting stays worth sending (a retried notification).
WAITING_NEWS_TTL = 3_600.0


class Milestone(enum.StrEnum):
    NEAR = "near"  # within notify_within places of the front
    SOON = "soon"  # about notify_minutes_left minutes to go
    TURN = "turn"  # admitted: the pass is ready
    ENDING = "ending"  # the pass ends in notify_pass_ending seconds


@dataclass(frozen=True)
class Reached:
    """One person who reached one milestone: ``until`` is when the news stops mattering (the
    pass's expiry; for people waiting, an hour on)."""

    milestone: Milestone
    seq: int
    identity: str
    until: float


def reached(queue: Queue, rate: float | None, now: float) -> list[Reached]:
    """Everyone who reached ``near``, ``soon`` or ``ending`` since the last call (at most
    BATCH of each), marks raised. ``rate``: the line's admissions per second."""
    store = get_store()
    qid = queue.store_id
    wanted = {
        Milestone.NEAR: queue.notify_within,
        Milestone.SOON: (
            math.floor(queue.notify_minutes_left * 60 * rate)
            if queue.notify_minutes_left and rate
            else None
        ),
    }
    if queue.state == QueueState.SCHEDULED:
        wanted = {}  # the draw at opening deals the places: nobody is near anything yet
    notice = queue.notify_pass_ending
    ending = bool(notice) and notice < queue.purchase_window
    if not any(wanted.values()) and not ending:
        return []
    marks = store.marks(qid)
    found: list[Reached] = []
    for milestone, within in wanted.items():
        if not within:
            continue
        heads = store.head(qid, within, after=marks.get(milestone), limit=BATCH)
        if heads:
            before = store.advance_mark(qid, milestone, heads[-1].order)
            found.extend(
                Reached(milestone, w.seq, w.identity, now + WAITING_NEWS_TTL)
                for w in heads
                if before is None or w.order > before
            )
    if ending:
        after = max(marks.get(Milestone.ENDING, -math.inf), now)
        due = store.passes(qid, expires_after=after, expires_by=now + notice, limit=BATCH)
        if due:
            before = store.advance_mark(qid, Milestone.ENDING, due[-1].expires_at)
            found.extend(
                Reached(Milestone.ENDING, p.seq, p.identity, p.expires_at)
                for p in due
                if before is None or p.expires_at > before
            )
    return found


#: (queue, milestone, [(seq, identity, until)]) -> how many were handed to the notifiers
TellAbsent = Callable[["Queue", str, list[tuple[int, str, float]]], int]


def announce(
    queue: Queue,
    rate: float | None,
    now: float | None = None,
    tell_absent: TellAbsent | None = None,
) -> int:
    """Find who reached a milestone and tell them: present people over the live broadcast
    (their sockets and streams), absent ones through ``tell_absent`` (the notifiers; the
    Celery path hands them to a task). Returns how many people were told."""
    from . import notifications
    from .live.publisher import publish

    now = services.clock() if now is None else now
    found = reached(queue, rate, now)
    if not found:
        return 0
    tell_absent = tell_absent or notifications.deliver_milestone
    present = presence.connected(queue.store_id, {r.identity for r in found}, now)
    for milestone in Milestone:
        mine = [r for r in found if r.milestone is milestone]
        if not mine:
            continue
        here = [r for r in mine if r.identity in present]
        if here:
            publish(queue, live_message(queue, milestone, here))
        away = [(r.seq, r.identity, r.until) for r in mine if r.identity not in present]
        if away:
            try:
                tell_absent(queue, milestone.value, away)
            except Exception:
                log.exception(
                    "milestone notifications failed",
                    extra={"queue": queue.slug, "milestone": milestone.value},
                )
    log.info(
        "milestones reached",
        extra={
            "event": "milestones_reached",
            "queue": queue.slug,
            "reached": {m.value: sum(r.milestone is m for r in found) for m in Milestone},
        },
    )
    return len(found)


def live_message(queue: Queue, milestone: Milestone, people: Sequence[Reached]) -> dict[str, Any]:
    """The broadcast that tells these people's sockets (``live.hub``: ``milestone`` frames)."""
    message: dict[str, Any] = {"k": "milestone", "m": milestone.value}
    if milestone is Milestone.ENDING:
        message["items"] = [[r.identity, r.seq, r.until] for r in people]
    else:
        message["items"] = [[r.identity, r.seq] for r in people]
    if milestone is Milestone.NEAR:
        message["within"] = queue.notify_within
    elif milestone is Milestone.SOON:
        message["minutes"] = queue.notify_minutes_left
    return message
