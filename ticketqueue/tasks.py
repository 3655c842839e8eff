"""Celery shared tasks: the tick (every second from beat), the cleanup, the notifications.

The Celery app and the beat schedule belong to the project (see ``demo_project/celery.py``).
Every task is idempotent and acknowledged late: a task run twice, or again after its worker
died, does no harm (admission is atomic in the store, rows only move forward, a lease per
queue skips a queue another tick holds, each notification is claimed once).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from celery import shared_task

from . import notifications, retention, ticker
from .models import Queue

__all__ = ["cleanup", "send_notifications", "tick", "tick_queue"]

log = logging.getLogger("ticketqueue")


@shared_task(acks_late=True)
def tick() -> dict[str, Any]:
    """Expire due passes, admit by each running queue's outflow policy (in TICK_BATCHES
    rounds over TICK_INTERVAL), and hand the absent admitted people to the notifier task.

    With several tickable queues, each gets a ``tick_queue`` task of its own, so several
    workers share them (each expires after one interval: the next tick does its work). With
    TICK_BATCHES > 1 those tasks sleep between their rounds and each holds a worker slot for
    the interval; this task then stays as the backstop: from its second round it ticks the
    queues no worker took (no free slot), so a site short of slots still ticks every queue.
    """
    from .conf import queue_settings

    queues = ticker.tickable_queues()
    if len(queues) <= 1:
        return ticker.run_tick(
            queues=queues, notify=_enqueue_notifications, tell_absent=_enqueue_milestone
        ).as_dict()
    interval = float(queue_settings.TICK_INTERVAL)
    random.shuffle(queues)  # no queue is always the last one a busy site gets to
    for queue in queues:
        tick_queue.apply_async((queue.pk,), expires=interval)
    report = ticker.TickReport()
    if int(queue_settings.TICK_BATCHES) > 1:
        report = ticker.run_tick(
            queues=queues,
            notify=_enqueue_notifications,
            tell_absent=_enqueue_milestone,
            first_batch=1,
        )
        report.skipped = []  # held by their own tasks, as intended
    report.fanned_out = [queue.slug for queue in queues]
    return report.as_dict()


@shared_task(acks_late=True)
def tick_queue(queue_id: int) -> dict[str, Any]:
    """One queue's tick (``tick`` fans out to these when several queues are tickable)."""
    queue = Queue.objects.filter(pk=queue_id).first()
    if queue is None:
        return ticker.TickReport().as_dict()
    return ticker.run_tick(
        queues=[queue], notify=_enqueue_notifications, tell_absent=_enqueue_milestone
    ).as_dict()


@shared_task(acks_late=True)
def cleanup() -> dict[str, Any]:
    """Abandon entries unseen past the disconnect grace; delete old ended entries and
    samples per ENTRY_RETENTION and SAMPLE_RETENTION."""
    return retention.cleanup().as_dict()


# Nobody reads its result: ignoring it also spares the caller a result subscription.
@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(notifications.NotificationFailed,),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=6,
)
def send_notifications(
    queue_id: int, targets: Sequence[Sequence[Any]], milestone: str = "turn"
) -> int:
    """Tell people with no live connection that they reached a milestone (their turn, near
    the front, their pass ending...) through every notifier (email, webhook, FCM, APNs).

    A notifier that asks to be retried (webhook, push) and failed is retried with backoff,
    for the people it did not reach only; a pass that ended meanwhile is no news any more."""
    queue = Queue.objects.filter(pk=queue_id).first()
    if queue is None:
        return 0
    return notifications.deliver(
        queue,
        [(int(seq), str(identity), float(until)) for seq, identity, until in targets],
        retry=True,
        milestone=milestone,
    )


def _enqueue_notifications(queue: Queue, admissions: Sequence[Any]) -> int:
    """Find the absent ones during the tick (presence is what it is now), send off the tick:
    an SMTP server must never slow admission down."""
    targets = notifications.absent(queue, admissions)
    if targets:
        send_notifications.delay(queue.pk, targets)
    return len(targets)


def _enqueue_milestone(queue: Queue, milestone: str, targets: list[tuple[int, str, float]]) -> int:
    send_notifications.delay(queue.pk, targets, milestone)
    return len(targets)
