"""Each queue's history at one-minute resolution: what the tick samples, and the minutes the
control room charts and exports (CSV, JSON).

A sample (``QueueSample``) holds the line at the start of a minute and cumulative totals, so a
minute's joins, admissions, abandons and completions are differences between neighbouring
samples: a missed minute shows as a gap, never as a spike. The wait percentiles are of the
people admitted since the sample before, read from the admission log and their entries.
Samples are kept for ``SAMPLE_RETENTION`` (the cleanup task deletes older ones).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from .models import Admission, Entry, Queue, QueueSample

__all__ = ["Minute", "as_csv", "history", "moment", "sample_values", "waits_since"]

#: At most this many admissions are read for one minute's wait percentiles: more (a sale
#: admitting 500/s) are read every k-th by admission number, an even sample of the minute.
MAX_WAITS_READ = 20_000


@dataclass(frozen=True)
class Minute:
    """One minute of a queue (``at`` is its start, UTC)."""

    at: datetime
    #: The line and the passes at the start of the minute
    waiting: int
    active: int
    #: During the minute before ``at`` (None where the sample before is missing, or a counter
    #: kept beside the store restarted)
    joins: int | None
    admissions: int | None
    abandons: int | None
    completions: int | None
    #: Seconds waited by the people admitted during that minute (None: nobody was)
    wait_p50: float | None
    wait_p90: float | None
    wait_p99: float | None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


COLUMNS = [f.name for f in fields(Minute)]


def percentile(ordered: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    return float(ordered[max(0, math.ceil(share * len(ordered)) - 1)])


def waits_since(queue: Queue, after_number: int, upto_number: int) -> list[float]:
    """Seconds waited by the admissions numbered (after, upto], sorted; every k-th of them
    when there are more than MAX_WAITS_READ."""
    count = upto_number - after_number
    if count <= 0:
        return []
    step = max(1, math.ceil(count / MAX_WAITS_READ))
    numbers = range(after_number + 1, upto_number + 1, step)
    admitted = dict(
        Admission.objects.filter(queue=queue, number__in=list(numbers)).values_list(
            "seq", "admitted_at"
        )
    )
    joined = Entry.objects.filter(queue=queue, seq__in=list(admitted)).values_list(
        "seq", "joined_at"
    )
    return sorted(max(0.0, (admitted[seq] - at).total_seconds()) for seq, at in joined)


def sample_values(
    queue: Queue, counts: Any, shared: dict[str, int], minute: datetime
) -> dict[str, Any]:
    """The fields of the sample at ``minute``: the store's ``counts`` now, the ``shared``
    counters (``metrics.counters``), and the waits of the admissions since the sample before."""
    before = (
        QueueSample.objects.filter(queue=queue, at__lt=minute)
        .order_by("-at")
        .values_list("admitted_total", flat=True)
        .first()
    )
    waits = [] if before is None else waits_since(queue, before, counts.admitted_total)
    return {
        "waiting": counts.waiting,
        "active": counts.active,
        "admitted_total": counts.admitted_total,
        "joined_total": counts.joined_total,
        "abandoned_total": shared.get("abandons", 0),
        "completed_total": shared.get("releases", 0),
        "wait_p50": percentile(waits, 0.50),
        "wait_p90": percentile(waits, 0.90),
        "wait_p99": percentile(waits, 0.99),
    }


def _delta(now: int, before: int | None) -> int | None:
    if before is None or now < before:  # no minute before, or the counter restarted
        return None
    return now - before


def moment(text: str | None) -> datetime | None:
    """A ``since``/``until`` bound as asked (ISO 8601; UTC unless it says); None for none.
    Raises ValueError for anything else."""
    if not text:
        return None
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def history(
    queue: Queue, since: datetime | None = None, until: datetime | None = None
) -> list[Minute]:
    """The queue's minutes from ``since`` to ``until`` (default: all that are kept), oldest
    first."""
    rows = QueueSample.objects.filter(queue=queue).order_by("at")
    if since is not None:
        # One minute more, for the differences of the first minute shown.
        rows = rows.filter(at__gte=since - timedelta(minutes=1))
    if until is not None:
        rows = rows.filter(at__lte=until)
    minutes = []
    previous: QueueSample | None = None
    for row in rows.iterator(chunk_size=2000):
        adjacent = previous is not None and row.at - previous.at == timedelta(minutes=1)
        last = previous if adjacent else None
        if since is None or row.at >= since:
            minutes.append(
                Minute(
                    at=row.at.astimezone(UTC),
                    waiting=row.waiting,
                    active=row.active,
                    joins=_delta(row.joined_total, last and last.joined_total),
                    admissions=_delta(row.admitted_total, last and last.admitted_total),
                    abandons=_delta(row.abandoned_total, last and last.abandoned_total),
                    completions=_delta(row.completed_total, last and last.completed_total),
                    wait_p50=row.wait_p50 if adjacent else None,
                    wait_p90=row.wait_p90 if adjacent else None,
                    wait_p99=row.wait_p99 if adjacent else None,
                )
            )
        previous = row
    return minutes


def as_csv(rows: Iterable[dict[str, Any]]) -> str:
    """Minutes (``Minute.as_dict()``) as CSV: a header, then a line each; None is empty."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
    return out.getvalue()
