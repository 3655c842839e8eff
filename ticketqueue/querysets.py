"""Querysets for the models, attached with ``.as_manager()``."""

from __future__ import annotations

from django.db import models

from .core import LIVE_STATES, EntryState, QueueState


class QueueQuerySet(models.QuerySet):
    def running(self) -> QueueQuerySet:
        """Queues a tick has work on: open, paused (passes still expire) or scheduled."""
        return self.exclude(state=QueueState.CLOSED)


class EntryQuerySet(models.QuerySet):
    def live(self) -> EntryQuerySet:
        return self.filter(state__in=LIVE_STATES)

    def waiting(self) -> EntryQuerySet:
        return self.filter(state=EntryState.WAITING)

    def in_line(self) -> EntryQuerySet:
        return self.waiting().order_by("order", "seq")
