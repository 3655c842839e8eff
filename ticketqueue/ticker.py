"""The tick loop: expiry, idle passes, admission, "your turn" and the other milestones for
every running queue, run by Celery beat (``tasks.tick``), ``manage.py ticketqueue_ticker`` or
the embedded thread.

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
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import close_old_connections, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.db.models.signals import post_delete
from django.dispatch import receiver

from . import analytics, conf, inventory, metrics, milestones, notifications, services
from .core import EntryState, QueueState, QueueUnavailable
from .courier import Courier, get_courier
from .models import Entry, Queue, QueueSample
from .store.companions import Leases

__all__ = [
    "CleanupReport",
    "EmbeddedTicker",
    "LoopReport",
    "QueueTick",
    "TickReport",
    "cleanup",
    "embedded",
    "forget_queue",
    "get_lease",
    "is_serving_process",
    "lease_ttl",
    "run_loop",
    "run_tick",
    "start_embedded_if_serving",
    "tickable_queues",
]

log = logging.getLogger("ticketqueue")

#: What a tick does with the admissions of a batch: tell the absent ones (returns how many).
Notify = Callable[[Queue, Sequence[Any]], int]

ENDED_STATES = [s.value for s in EntryState if not s.is_live]


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _owner() -> str:
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
    recent = _dt(now) - timedelta(days=1)
    queues = Queue.objects.filter(
        ~Q(state=QueueState.CLOSED.value) | Q(closed_at__gte=recent)
    ).order_by("pk")
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
    owner = owner or _owner()
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


@dataclass
class CleanupReport:
    abandoned: int = 0
    #: Rows of closed queues still marked waiting (a join that raced the close), revoked.
    settled: int = 0
    deleted: int = 0
    samples_deleted: int = 0
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cleanup(now: float | None = None, batch: int = 5_000) -> CleanupReport:
    """Abandon entries unseen past their queue's grace, revoke rows a closed queue still has
    waiting, delete ended entries older than ``ENTRY_RETENTION`` (after ``ENTRY_ARCHIVER``
    saw them) and old chart samples.

    One cleanup at a time (a store lock); a second one running at once does nothing.
    """
    from django.utils.module_loading import import_string

    from .conf import queue_settings
    from .store import get_store

    now = services.clock() if now is None else now
    store = get_store()
    owner = _owner()
    report = CleanupReport()
    if not store.acquire_lock("cleanup", owner, ttl=600):
        report.skipped = True
        return report
    try:
        for queue in Queue.objects.exclude(state=QueueState.CLOSED.value).order_by("pk"):
            try:
                report.abandoned += len(services.abandon_unseen(queue, now))
            except Exception:
                log.exception("cleanup: abandoning failed", extra={"queue": queue.slug})
        waiting_rows = Entry.objects.filter(queue=OuterRef("pk"), state=EntryState.WAITING.value)
        closed_with_waiting = Queue.objects.filter(
            Exists(waiting_rows), state=QueueState.CLOSED.value
        )
        for queue in closed_with_waiting.order_by("pk"):
            report.settled += services.settle_closed(queue, now)
        retention = queue_settings.ENTRY_RETENTION
        if retention:
            archiver = queue_settings.ENTRY_ARCHIVER
            archive = import_string(archiver) if isinstance(archiver, str) else archiver
            report.deleted = _delete_ended(now - float(retention), archive, batch)
        cutoff = _dt(now - float(queue_settings.SAMPLE_RETENTION))
        report.samples_deleted, _ = QueueSample.objects.filter(at__lt=cutoff).delete()
    finally:
        store.release_lock("cleanup", owner)
    if report.abandoned or report.settled or report.deleted:
        log.info("cleanup done", extra={"event": "cleanup", **report.as_dict()})
    return report


def _delete_ended(before: float, archive: Callable[[Any], Any] | None, batch: int) -> int:
    """Delete ended entries, each queue's newest entry excepted: a rebuild numbers new
    entries after the highest ``seq`` the rows hold, so that one row must stay."""
    deleted = 0
    per_queue = Entry.objects.values_list("queue_id").annotate(top=Max("seq"))
    tops: Mapping[int, int] = dict(per_queue.values_list("queue_id", "top"))
    for queue_id, top in tops.items():
        while True:
            pks = list(
                Entry.objects.filter(
                    queue_id=queue_id, state__in=ENDED_STATES, ended_at__lt=_dt(before)
                )
                .exclude(seq=top)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch]
            )
            if not pks:
                break
            rows = Entry.objects.filter(pk__in=pks)
            if archive is not None:
                archive(rows)
            deleted += rows.delete()[0]
    return deleted


# -- the loop (command and embedded thread) ------------------------------------------------


@dataclass
class LoopReport:
    ticks: int = 0
    admitted: int = 0
    cleanups: int = 0


def run_loop(
    stop: threading.Event,
    *,
    ticks: int | None = None,
    interval: float | None = None,
    batches: int | None = None,
    cleanup_every: float = 60.0,
    timer: Callable[[], float] = time.monotonic,
    courier: Courier | None = None,
    queues: Sequence[Queue] | None = None,
) -> LoopReport:
    """Tick every ``interval`` seconds until ``stop`` is set (or ``ticks`` ticks ran), with a
    cleanup every ``cleanup_every`` seconds (0: never). Errors are logged, never fatal.
    ``queues``: tick these only (default: every tickable queue, looked up each tick).
    Notifications go to the ``courier``'s thread (the process's own by default): a slow
    notifier never delays the next tick."""
    from .conf import queue_settings

    courier = courier or get_courier()
    interval = float(interval or queue_settings.TICK_INTERVAL)
    report = LoopReport()
    next_cleanup = timer() + cleanup_every if cleanup_every else math.inf
    start = timer()
    while not stop.is_set() and (ticks is None or report.ticks < ticks):
        try:
            result = run_tick(
                queues=queues,
                batches=batches,
                interval=interval,
                notify=courier.turn,
                tell_absent=courier.send,
                timer=timer,
                sleep=lambda s: stop.wait(s),
            )
            report.admitted += result.admitted
            if timer() >= next_cleanup:
                cleanup()
                report.cleanups += 1
                next_cleanup = timer() + cleanup_every
        except Exception:
            log.exception("tick loop: tick failed")
        finally:
            close_old_connections()
        report.ticks += 1
        if ticks is not None and report.ticks >= ticks:
            break
        # Keep the beat: the next tick starts at start + k * interval, skipping missed ones.
        now = timer()
        beats = math.floor((now - start) / interval) + 1
        stop.wait(max(0.0, start + beats * interval - now))
    return report


class EmbeddedTicker:
    """The tick loop in a daemon thread of the serving process (the embedded default)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pid: int | None = None
        self._mutex = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()

    def ensure_started(self) -> bool:
        """Start the thread unless it runs in this process already; True if started now."""
        if self.running:
            return False
        with self._mutex:
            if self.running:
                return False
            self._stop = threading.Event()
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="ticketqueue-ticker", daemon=True
            )
            self._thread.start()
        log.info("embedded ticker started", extra={"pid": self._pid})
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        try:
            run_loop(self._stop)
        finally:
            close_old_connections()


embedded = EmbeddedTicker()

#: Programs that serve requests; ``manage.py runserver`` is recognised separately.
SERVERS = frozenset({"daphne", "uvicorn", "gunicorn", "hypercorn", "granian", "waitress-serve"})


def is_serving_process(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether this process serves requests: runserver (its reloader's child, not the
    watcher), or an ASGI/WSGI server. Never a test run, a migration or another command."""
    if not argv:
        return False
    program = os.path.basename(argv[0])
    if program == "__main__.py":  # python -m daphne
        program = os.path.basename(os.path.dirname(argv[0]))
    if program in SERVERS:
        return True
    if len(argv) > 1 and argv[1] == "runserver":
        return "--noreload" in argv or environ.get("RUN_MAIN") == "true"
    return False


def _in_a_test_run() -> bool:
    """A pytest run says so (``conf.embedded_ticker_allowed``); under ``manage.py test`` the
    test client's requests are no sign of a serving process either."""
    return not conf.embedded_ticker_allowed or (len(sys.argv) > 1 and sys.argv[1] == "test")


def _start_on_request(**kwargs: Any) -> None:
    if not embedded.running and not _in_a_test_run():
        embedded.ensure_started()


def start_embedded_if_serving() -> bool:
    """Called from AppConfig.ready: with EMBEDDED_TICKER on, start the ticker thread in a
    serving process, and otherwise on the first request of a process that serves some
    (a server this module does not recognise); never in tests or other commands."""
    from django.core.signals import request_started

    if not conf.embedded_ticker_on() or _in_a_test_run():
        return False
    request_started.connect(_start_on_request, dispatch_uid="ticketqueue.embedded_ticker")
    if is_serving_process(sys.argv, os.environ):
        return embedded.ensure_started()
    return False
