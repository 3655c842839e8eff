"""The queue rows the API reads, kept a moment per process."""

from __future__ import annotations

import threading
import time

from ..core import QueueNotFound
from ..models import Queue

__all__ = ["QUEUE_ROW_TTL", "forget_rows", "queue_row"]

#: Seconds an API process reuses a queue row it read. The store holds the knobs that decide
#: (state, capacity, rate), so a row a moment old only shifts an ETA; it saves one SELECT on
#: every join and status call of a busy sale.
QUEUE_ROW_TTL = 2.0
_rows: dict[str, tuple[Queue, float]] = {}
_rows_lock = threading.Lock()


def queue_row(slug: str) -> Queue:
    now = time.monotonic()
    hit = _rows.get(slug)
    if hit is not None and now < hit[1]:
        return hit[0]
    try:
        queue = Queue.objects.get(slug=slug)
    except Queue.DoesNotExist:
        raise QueueNotFound() from None
    with _rows_lock:
        if len(_rows) > 1_000:
            _rows.clear()
        _rows[slug] = (queue, now + QUEUE_ROW_TTL)
    return queue


def forget_rows() -> None:
    _rows.clear()
