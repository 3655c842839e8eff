"""The Prometheus endpoint: every shown queue's gauges and counters, read at scrape time."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from .metrics import counters, shown_queues, snapshot
from .models import Queue

__all__ = ["QueueCollector", "metrics_view"]


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
