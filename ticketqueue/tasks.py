"""Celery shared tasks: the tick (every second from beat), the cleanup, the notifications.

The Celery app and the beat schedule belong to the project (see ``demo_project/celery.py``).
Every task is idempotent and acknowledged late: a task run twice, or again after its worker
died, does no harm (admission is atomic in the store, rows only move forward, a lease per
queue skips a queue another tick holds, each notification is claimed once).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import shared_task

from . import notifications, ticker
from .models import Queue

__all__ = ["cleanup", "send_turn_notifications", "tick"]

log = logging.getLogger("ticketqueue")


@shared_task(acks_late=True)
def tick() -> dict[str, Any]:
    """Expire due passes, admit by each running queue's outflow policy (in TICK_BATCHES
    rounds over TICK_INTERVAL), and hand the absent admitted people to the notifier task."""
    return ticker.run_tick(notify=_enqueue_notifications).as_dict()


@shared_task(acks_late=True)
def cleanup() -> dict[str, Any]:
    """Abandon entries unseen past the disconnect grace; delete old ended entries and
    samples per ENTRY_RETENTION and SAMPLE_RETENTION."""
    return ticker.cleanup().as_dict()


# Nobody reads its result: ignoring it also spares the caller a result subscription.
@shared_task(acks_late=True, ignore_result=True)
def send_turn_notifications(queue_id: int, targets: Sequence[Sequence[Any]]) -> int:
    """Tell admitted people with no live connection that their turn came (email, push...)."""
    queue = Queue.objects.filter(pk=queue_id).first()
    if queue is None:
        return 0
    return notifications.deliver(
        queue, [(int(seq), str(identity), float(exp)) for seq, identity, exp in targets]
    )


def _enqueue_notifications(queue: Queue, admissions: Sequence[Any]) -> int:
    """Find the absent ones during the tick (presence is what it is now), send off the tick:
    an SMTP server must never slow admission down."""
    targets = notifications.absent(queue, admissions)
    if targets:
        send_turn_notifications.delay(queue.pk, targets)
    return len(targets)
