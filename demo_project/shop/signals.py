"""Simulated crowd members (see demo.add_crowd) buy the moment they are admitted, so their
passes free their slots at once and a real visitor's position keeps falling, tick by tick:
their slots go to the next tick (a release that let the next one in would let the whole
crowd through inside one signal chain)."""

from __future__ import annotations

import contextlib
from typing import Any

from django.dispatch import receiver

from ticketqueue import services, signals
from ticketqueue.core import TicketQueueError

CROWD_PREFIX = "anon:crowd"


@receiver(signals.entries_admitted, dispatch_uid="shop.crowd_buys_at_once")
def crowd_buys_at_once(sender: Any, queue: Any, admissions: Any, **kwargs: Any) -> None:
    for admission in admissions:
        if admission.identity.startswith(CROWD_PREFIX):
            with contextlib.suppress(TicketQueueError):  # already ended
                services.release_entry(queue, admission.seq, refill_now=False)
