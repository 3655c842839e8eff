"""Each queue's live numbers (admin, ``ticketqueue_stats``, the Prometheus endpoint in
``prometheus``) and the counters every process adds to (the store's ``counters`` companion).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, Q, QuerySet

from . import signals
from .core import EntryState, QueueUnavailable, estimate_eta, measured_rate
from .models import Entry, Queue
from .store import get_store

__all__ = [
    "COUNTERS",
    "LiveNumbers",
    "connect_signals",
    "counters",
    "increment",
    "live_numbers",
    "shown_queues",
    "snapshot",
]

log = logging.getLogger("ticketqueue")

#: Counters kept per queue (joins and admissions come from the store's exact totals).
COUNTERS = ("expirations", "releases", "revocations", "departures", "abandons")


# -- live numbers ----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveNumbers:
    """One queue as the control room shows it."""

    queue_id: str
    slug: str
    name: str
    state: str
    #: False when the store does not hold the queue (never opened, or lost and not rebuilt)
    loaded: bool
    waiting: int | None = None
    active: int | None = None
    admitted_total: int | None = None
    #: Entries that ever joined
    joined_total: int | None = None
    admitted_per_minute: float | None = None
    #: Seconds until the last entry in line is admitted, at the current outflow
    eta_last_seconds: int | None = None
    #: Share of the queue's entries that were abandoned (unseen past the disconnect grace)
    abandon_rate: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _entry_tallies(queue_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """queue pk -> (entries, abandoned), in one query."""
    rows = (
        Entry.objects.filter(queue_id__in=list(queue_ids))
        .values("queue_id")
        .annotate(total=Count("pk"), abandoned=Count("pk", filter=Q(state="abandoned")))
    )
    return {r["queue_id"]: (r["total"], r["abandoned"]) for r in rows}


def live_numbers(
    queue: Queue, now: float | None = None, tally: tuple[int, int] | None = None
) -> LiveNumbers:
    from . import services

    now = services.clock() if now is None else now
    if tally is None:
        tally = _entry_tallies([queue.pk]).get(queue.pk, (0, 0))
    total, abandoned = tally
    common = {
        "queue_id": queue.store_id,
        "slug": queue.slug,
        "name": queue.name,
        "state": queue.state,
        "abandon_rate": (abandoned / total) if total else None,
    }
    try:
        counts = get_store().counts(queue.store_id, now)
    except QueueUnavailable:
        return LiveNumbers(loaded=False, **common)
    measured = measured_rate(counts.flow, now, counts.admitted_total)
    rate = services.outflow_rate(queue, counts, now)
    return LiveNumbers(
        loaded=True,
        waiting=counts.waiting,
        active=counts.active,
        admitted_total=counts.admitted_total,
        joined_total=counts.joined_total,
        admitted_per_minute=None if measured is None else measured * 60,
        eta_last_seconds=estimate_eta(counts.waiting, rate, None) if counts.waiting else 0,
        **common,
    )


def shown_queues(now: float | None = None, among: QuerySet[Queue] | None = None) -> list[Queue]:
    """Queues worth reporting (of ``among``, default all): every queue not closed, and those
    closed in the last day."""
    from . import services

    now = services.clock() if now is None else now
    queues = Queue.objects.all() if among is None else among
    return list(queues.current(datetime.fromtimestamp(now, tz=UTC)).order_by("slug"))


def snapshot(queues: Iterable[Queue] | None = None, now: float | None = None) -> list[LiveNumbers]:
    """Live numbers of these queues (default: ``shown_queues``)."""
    queues = list(shown_queues(now) if queues is None else queues)
    tallies = _entry_tallies([q.pk for q in queues])
    return [live_numbers(q, now, tallies.get(q.pk, (0, 0))) for q in queues]


# -- counters shared by every process --------------------------------------------------


def increment(queue_id: str, name: str, n: int = 1) -> None:
    """Add ``n`` to a queue's counter; never fails the operation it counts."""
    if n <= 0:
        return
    try:
        get_store().counters.add(str(queue_id), name, n)
    except Exception:
        log.warning("metrics: counter not updated", exc_info=True, extra={"counter": name})


def counters(queue_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """queue id -> {counter: value}; counters never incremented are left out."""
    return get_store().counters.read([str(q) for q in queue_ids]) if queue_ids else {}


def _on_expired(sender: Any, queue: Queue, changes: Sequence[Any], **kwargs: Any) -> None:
    increment(queue.store_id, "expirations", len(changes))


def _on_released(sender: Any, queue: Queue, **kwargs: Any) -> None:
    increment(queue.store_id, "releases")


def _on_revoked(sender: Any, queue: Queue, changes: Sequence[Any], **kwargs: Any) -> None:
    increment(queue.store_id, "revocations", len(changes))


def _on_departed(sender: Any, queue: Queue, changes: Sequence[Any], **kwargs: Any) -> None:
    increment(queue.store_id, "departures", len(changes))
    abandoned = sum(1 for c in changes if c.state is EntryState.ABANDONED)
    increment(queue.store_id, "abandons", abandoned)


def _on_closed(sender: Any, queue: Queue, revoked: int, **kwargs: Any) -> None:
    increment(queue.store_id, "revocations", revoked)


def connect_signals() -> None:
    """Count what the signals report (called from AppConfig.ready)."""
    uid = "ticketqueue.metrics"
    signals.passes_expired.connect(_on_expired, dispatch_uid=f"{uid}.expired")
    signals.pass_released.connect(_on_released, dispatch_uid=f"{uid}.released")
    signals.entries_revoked.connect(_on_revoked, dispatch_uid=f"{uid}.revoked")
    signals.entries_departed.connect(_on_departed, dispatch_uid=f"{uid}.departed")
    signals.queue_closed.connect(_on_closed, dispatch_uid=f"{uid}.closed")
