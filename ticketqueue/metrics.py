"""Observability: each queue's live numbers (admin, ticketqueue_stats), the Prometheus endpoint,
and a JSON log formatter. Counters live beside the store (Redis) so every process adds to them.

Following one entry in the logs: ``entry joined`` (queue, seq), ``passes granted`` (queue,
seqs), ``turn notified`` (queue, seqs), ``pass released`` (queue, seq): queue + seq name it.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse

from . import signals
from .core import EntryState, QueueState, QueueUnavailable, estimate_eta, measured_rate
from .models import Entry, Queue
from .store import get_store

__all__ = [
    "COUNTERS",
    "JsonFormatter",
    "LiveNumbers",
    "QueueCollector",
    "connect_signals",
    "counters",
    "increment",
    "live_numbers",
    "metrics_view",
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
    since = datetime.fromtimestamp(now, tz=UTC) - timedelta(days=1)
    queues = Queue.objects.all() if among is None else among
    recent = queues.filter(~Q(state=QueueState.CLOSED.value) | Q(closed_at__gte=since))
    return list(recent.order_by("slug"))


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


# -- Prometheus ------------------------------------------------------------------------


class QueueCollector:
    """Reads every shown queue's numbers (of ``among``, default all) at scrape time: the gauges
    from the store, the counters from the shared hash, joins and admissions from the store's
    exact totals."""

    def __init__(self, among: QuerySet[Queue] | None = None) -> None:
        self.among = among

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        numbers = snapshot(shown_queues(among=self.among))
        shared = counters([n.queue_id for n in numbers])
        waiting = GaugeMetricFamily(
            "ticketqueue_waiting", "Entries waiting in line.", labels=["queue"]
        )
        active = GaugeMetricFamily(
            "ticketqueue_active_passes", "Passes active (admitted, not ended).", labels=["queue"]
        )
        admissions = CounterMetricFamily(
            "ticketqueue_admissions", "Entries admitted (passes issued).", labels=["queue"]
        )
        joins = CounterMetricFamily(
            "ticketqueue_joins", "Entries that joined the queue.", labels=["queue"]
        )
        families = {
            "expirations": CounterMetricFamily(
                "ticketqueue_expirations", "Passes that expired unused.", labels=["queue"]
            ),
            "releases": CounterMetricFamily(
                "ticketqueue_releases", "Passes released by a completed order.", labels=["queue"]
            ),
            "revocations": CounterMetricFamily(
                "ticketqueue_revocations", "Entries and passes revoked.", labels=["queue"]
            ),
            "departures": CounterMetricFamily(
                "ticketqueue_departures",
                "Waiting entries that left or were abandoned.",
                labels=["queue"],
            ),
            "abandons": CounterMetricFamily(
                "ticketqueue_abandons",
                "Waiting entries abandoned (unseen past the disconnect grace).",
                labels=["queue"],
            ),
        }
        for n in numbers:
            if n.loaded:
                waiting.add_metric([n.slug], n.waiting or 0)
                active.add_metric([n.slug], n.active or 0)
                admissions.add_metric([n.slug], n.admitted_total or 0)
                joins.add_metric([n.slug], n.joined_total or 0)
            values = shared.get(n.queue_id, {})
            for name, family in families.items():
                family.add_metric([n.slug], values.get(name, 0))
        yield waiting
        yield active
        yield admissions
        yield joins
        yield from families.values()


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of every shown queue: for ``Authorization: Bearer
    <METRICS_TOKEN>``, or without a token set for logged-in staff only, who see the queues
    they reach (``ticketqueue.tenancy``). Never for anyone who reaches the URL: the numbers
    of a sale are the site's business."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from .conf import queue_settings
    from .tenancy import queues_for_user

    token = queue_settings.METRICS_TOKEN
    among = None
    if token:
        given = request.headers.get("Authorization", "")
        allowed = hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    else:
        user = getattr(request, "user", None)
        allowed = bool(getattr(user, "is_staff", False))
        among = queues_for_user(user)
    if not allowed:
        return HttpResponse("metrics_forbidden", status=403, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(among))  # type: ignore[arg-type]
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


# -- structured logs -------------------------------------------------------------------

_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and every ``extra`` field.

    LOGGING = {"formatters": {"json": {"()": "ticketqueue.metrics.JsonFormatter"}}, ...}
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
