"""One tick: expiry, idle passes, admission, "your turn" and the other milestones for every
running queue, run by Celery beat (``tasks.tick``), or in a loop (``tick_loop``: the
``manage.py ticketqueue_ticker`` command and the embedded thread).

Each queue is ticked under a *lease*: a lock with a time to live plus a fencing token that
grows by one with every lease taken. A tick that finds the lease held skips the queue (the
previous tick overran, or beat runs twice); a tick whose lease was taken over (it stalled past
the time to live) stops before its next batch and writes nothing more.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from . import analytics, inventory, metrics, milestones, notifications, services
from .core import QueueState, QueueUnavailable
from .models import Queue, QueueSample
from .store.companions import Leases

__all__ = [
    "QueueTick",
    "TickReport",
    "forget_queue",
    "get_lease",
    "lease_ttl",
    "run_tick",
    "tickable_queues",
    "worker_name",
]

log = logging.getLogger("ticketqueue")

#: What a tick does with the admissions of a batch: tell the absent ones (returns how many).
Notify = Callable[[Queue, Sequence[Any]], int]


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def worker_name() -> str:
    """Who holds a lease or a lock: host:pid:nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def lease_ttl(interval: float) -> float:
    """How long a queue's lease outlives its last renewal: two intervals, at least 2 s.

    Renewed before every batch, so only a tick stalled that long (or a dead worker) loses
    it; a worker killed with SIGKILL holds its queues up for at most this long.
    """
    return max(2.0, 2.0 * interval)


# -- leases (lock + fencing token) ---------------------------------------------------------


def get_lease() -> Leases:
    """The configured store's leases (``store.companions.Leases``)."""
    from .store import get_store

    return get_store().leases


# -- one tick ------------------------------------------------------------------------------


@dataclass
class QueueTick:
    """What one tick did to one queue."""

    queue_id: str
    slug: str
    token: int
    batches: int = 0
    admitted: int = 0
    expired: int = 0
    notified: int = 0
    #: People who reached "near", "soon" or "ending" this tick (ticketqueue.milestones)
    milestones: int = 0
    #: True when a newer tick took the lease over and this one stopped early
    fenced: bool = False
    error: str | None = None


@dataclass
class TickReport:
    ticked: list[QueueTick] = field(default_factory=list)
    #: Slugs of the queues another tick held (overran or doubled beat)
    skipped: list[str] = field(default_factory=list)
    #: Slugs of the queues handed to a task of their own (``tasks.tick`` with several queues)
    fanned_out: list[str] = field(default_factory=list)
    #: Who ticked: host:pid:nonce, as written in the leases
    owner: str = ""

    @property
    def admitted(self) -> int:
        return sum(t.admitted for t in self.ticked)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ticked": [asdict(t) for t in self.ticked],
            "skipped": list(self.skipped),
            "fanned_out": list(self.fanned_out),
            "owner": self.owner,
            "admitted": self.admitted,
        }


def tickable_queues(now: float | None = None) -> list[Queue]:
    """Queues a tick has work on: not closed, or closed while passes may still be active."""
    now = services.clock() if now is None else now
    queues = Queue.objects.current(_dt(now)).order_by("pk")
    return [
        q
        for q in queues
        if q.state != QueueState.CLOSED.value
        or (q.closed_at and q.closed_at.timestamp() + q.purchase_window + 60 >= now)
    ]


def run_tick(
    *,
    queues: Iterable[Queue] | None = None,
    batches: int | None = None,
    interval: float | None = None,
    notify: Notify | None = None,
    tell_absent: milestones.TellAbsent | None = None,
    owner: str | None = None,
    timer: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Any] = time.sleep,
    first_batch: int = 0,
) -> TickReport:
    """One tick of every tickable queue: ``batches`` admission rounds spread over ``interval``.

    With TICK_BATCHES=10 and TICK_INTERVAL=1 a queue admitting 500/s gets 50 every 100 ms,
    inside one Celery task. ``timer`` and ``sleep`` pace the batches (tests pass a fake).
    ``notify`` tells the admitted people who are away (default: the notifiers, inline), and
    ``tell_absent`` those away who reached another milestone, once per tick
    (``ticketqueue.milestones``).

    A round that comes due while an earlier one still runs (a slow round, a stalled process)
    is merged into the next one instead of run back to back: the bucket refills from the time
    elapsed, so one round admits what the missed ones would have, and the tick keeps to its
    interval. ``first_batch`` > 0 leaves the rounds before it to others: the leases are taken
    at that round, of the queues nobody holds then (the fan-out's backstop, ``tasks.tick``).
    """
    from .conf import queue_settings

    batches = int(batches or queue_settings.TICK_BATCHES)
    interval = float(interval or queue_settings.TICK_INTERVAL)
    notify = notifications.notify_turn if notify is None else notify
    owner = owner or worker_name()
    ttl = lease_ttl(interval)
    lease = get_lease()
    report = TickReport(owner=owner)
    held: list[tuple[Queue, QueueTick]] = []
    last: dict[str, services.TickResult] = {}
    step = interval / batches
    start = timer()
    batch = min(max(0, first_batch), batches)
    if batch:
        sleep(max(0.0, start + batch * step - timer()))
    try:
        if batch < batches:
            for queue in tickable_queues() if queues is None else queues:
                token = lease.acquire(queue.store_id, owner, ttl)
                if token is None:
                    report.skipped.append(queue.slug)
                else:
                    held.append((queue, QueueTick(queue.store_id, queue.slug, token)))
        if report.skipped:
            log.debug("tick skipped queues another tick holds", extra={"queues": report.skipped})
        for queue, _done in held:
            try:
                inventory.ask_resolver(queue)  # a sold-out queue closes before admitting more
            except Exception:
                log.exception("stock not updated", extra={"queue": queue.slug})
            try:
                services.end_idle_passes(queue)  # their slots go to this tick's admissions
            except Exception:
                log.exception("idle passes not ended", extra={"queue": queue.slug})
        first = batch
        while held and batch < batches:
            if batch > first:
                sleep(max(0.0, start + batch * step - timer()))
            for queue, done in held:
                if done.fenced or done.error:
                    continue
                if not lease.renew(queue.store_id, owner, done.token, ttl):
                    done.fenced = True
                    log.warning(
                        "tick fenced: a newer tick holds the queue",
                        extra={"queue": queue.slug, "token": done.token},
                    )
                    continue
                result = _tick_one(queue, done, notify)
                if result is not None:
                    last[queue.store_id] = result
            if all(done.fenced or done.error for _queue, done in held):
                break
            # The next round is the latest one already due, or the next in line.
            batch = max(batch + 1, math.floor((timer() - start) / step + 1e-9))
        for queue, done in held:
            result = last.get(queue.store_id)
            if result is not None and not done.fenced:
                try:
                    done.milestones = milestones.announce(queue, result.eta_rate, None, tell_absent)
                except Exception:
                    log.exception("milestones not announced", extra={"queue": queue.slug})
                _sample(queue, result)
    finally:
        for queue, _done in held:
            lease.release(queue.store_id, owner)
    report.ticked = [done for _queue, done in held]
    return report


def _tick_one(queue: Queue, done: QueueTick, notify: Notify) -> services.TickResult | None:
    try:
        result = services.tick(queue)
    except QueueUnavailable as exc:
        # Another process is loading this queue into the store (its first use, a rebuild):
        # expected now and then, and the next tick admits as usual.
        done.error = f"{type(exc).__name__}: {exc}"
        log.warning("tick skipped: %s", exc.message, extra={"queue": queue.slug})
        return None
    except Exception as exc:
        # One queue's trouble (database hiccup) must not stop the others; the next tick
        # finishes its rows from the journal.
        done.error = f"{type(exc).__name__}: {exc}"
        log.exception("tick failed", extra={"queue": queue.slug})
        return None
    done.batches += 1
    done.admitted += len(result.admitted)
    done.expired += len(result.expired)
    if result.admitted:
        log.info(
            "passes granted",
            extra={
                "event": "passes_granted",
                "queue": queue.slug,
                "queue_id": queue.store_id,
                "seqs": [a.seq for a in result.admitted],
                "token": done.token,
            },
        )
        try:
            done.notified += notify(queue, result.admitted)
        except Exception:
            log.exception("turn notifications failed", extra={"queue": queue.slug})
    return result


#: (queue id -> minute last sampled) in this process, so the database is asked once a minute.
_sampled: dict[str, float] = {}


def _sample(queue: Queue, result: services.TickResult) -> None:
    """The line at the start of each minute, for the charts and the history
    (``ticketqueue.analytics``); at most one row per minute."""
    if result.counts is None:
        return
    minute = math.floor(services.clock() / 60) * 60
    if _sampled.get(queue.store_id) == minute:
        return
    at = _dt(minute)
    shared = metrics.counters([queue.store_id]).get(queue.store_id, {})
    values = analytics.sample_values(queue, result.counts, shared, at)
    QueueSample.objects.bulk_create(
        [QueueSample(queue=queue, at=at, **values)],
        ignore_conflicts=True,  # another worker sampled this minute first
    )
    _sampled[queue.store_id] = minute


# -- cleanup -------------------------------------------------------------------------------


@receiver(post_delete, sender=Queue, dispatch_uid="ticketqueue.ticker.queue_deleted")
def _forget_deleted_queue(sender: Any, instance: Queue, using: str, **kwargs: Any) -> None:
    """A deleted queue (admin, queryset, ``queue.delete()``) leaves the store once the
    deletion is committed: its line, passes, journal, lease, presence, counters and claims.
    A deletion that rolls back leaves them be."""
    queue_id = instance.store_id
    transaction.on_commit(lambda: forget_queue(queue_id), using=using)


def forget_queue(queue_id: str) -> None:
    """Remove one queue's hot state from the store (after its row is gone)."""
    from .store import get_store

    try:
        get_store().delete(queue_id)
    except Exception:
        # The rows are gone already; keys left behind are garbage, not a failure to report
        # to whoever deleted the queue.
        log.exception("deleting a queue's hot state failed", extra={"queue_id": queue_id})
    _sampled.pop(queue_id, None)
