"""Querysets for the models, attached with ``.as_manager()``."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models

from .core import LIVE_STATES, EntryState, QueueState


class QueueQuerySet(models.QuerySet):
    def running(self) -> QueueQuerySet:
        """Queues a tick has work on: open, paused (passes still expire) or scheduled."""
        return self.exclude(state=QueueState.CLOSED)

    def current(self, now: datetime) -> QueueQuerySet:
        """The running queues and those closed in the day before ``now``: the ones still
        reported, and the only ones a tick may still have passes to expire in."""
        since = now - timedelta(days=1)
        return self.filter(~models.Q(state=QueueState.CLOSED) | models.Q(closed_at__gte=since))


class EntryQuerySet(models.QuerySet):
    def live(self) -> EntryQuerySet:
        return self.filter(state__in=LIVE_STATES)

    def waiting(self) -> EntryQuerySet:
        return self.filter(state=EntryState.WAITING)

    def in_line(self) -> EntryQuerySet:
        return self.waiting().order_by("order", "seq")
