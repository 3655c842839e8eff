"""The cleanup: abandon entries unseen past their queue's grace, settle closed queues' stray
waiting rows, and delete ended entries and chart samples past their retention. Run every
minute by the tick loop or by Celery beat (``tasks.cleanup``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Exists, Max, OuterRef

from . import services
from .core import ENDED_STATES, EntryState, QueueState
from .models import Entry, Queue, QueueSample
from .ticker import worker_name

__all__ = ["CleanupReport", "cleanup"]

log = logging.getLogger("ticketqueue")


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


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
    owner = worker_name()
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
