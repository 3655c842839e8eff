"""What is left to sell, and the sell-out: a queue closes by itself when its stock reaches zero.

A site keeps ``Queue.stock`` (tickets left; None: unknown) in one of two ways:

- counted here: ``ticketqueue.release(pass, tickets=n)`` takes n off when an order completes,
  ``set_stock`` sets it (a restock, the start of a sale);
- asked of the site: ``TICKETQUEUE['STOCK_RESOLVER']``, ``f(queue) -> int | None``, is called
  once per tick for each queue the tick holds.

The row is the record (so a lost store gets it back on rebuild); the store holds a mirror that
every status and live update reads, so people far enough back hear that the tickets will likely
run out before their turn. At zero the queue closes (``operations.sell_out``): everyone waiting
is turned away and told, passes already issued stay valid.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils.module_loading import import_string

from . import operations, services
from .core import StoreUnreachable
from .models import Queue

__all__ = ["ask_resolver", "set_stock", "sold"]

log = logging.getLogger("ticketqueue")


def _mirror(queue: Queue, left: int | None) -> None:
    try:
        services.set_stock(queue, left)
    except StoreUnreachable:
        # The row holds the count; the next change, configure or rebuild mirrors it again.
        log.warning("stock not mirrored: the store is unreachable", extra={"queue": queue.slug})


def _count(queue: Queue, left_of: Callable[[int | None], int | None]) -> int | None:
    """Record ``left_of(recorded stock)`` under the row's lock and mirror it (an unchanged
    count is neither: most orders of a queue that counts no stock); at 0 the queue closes.
    Returns what is left."""
    with transaction.atomic():
        rows = Queue.objects.select_for_update().values_list("stock", flat=True)
        recorded = rows.get(pk=queue.pk)
        left = left_of(recorded)
        if left != recorded:
            Queue.objects.filter(pk=queue.pk).update(stock=left)
            _mirror(queue, left)  # under the row lock: the store sees the counts in order
    queue.stock = left
    if left == 0:
        operations.sell_out(queue)
    return left


def set_stock(queue: Queue, remaining: int | None) -> None:
    """What is left to sell now (None: unknown); at 0 the queue closes."""
    left = None if remaining is None else max(0, int(remaining))
    _count(queue, lambda _recorded: left)


def sold(queue: Queue, tickets: int = 1) -> int | None:
    """An order of ``tickets`` completed: take them off the queue's stock. Returns what is
    left (None: the queue counts no stock); at 0 the queue closes."""
    if tickets < 0:
        raise ValueError("tickets must be 0 or more")
    if not tickets:
        return queue.stock
    return _count(queue, lambda recorded: None if recorded is None else max(0, recorded - tickets))


def _resolver() -> Any:
    from .conf import queue_settings

    path = queue_settings.STOCK_RESOLVER
    return import_string(path) if isinstance(path, str) else path


def ask_resolver(queue: Queue) -> None:
    """The tick's question to the site: how much is left? A new answer is recorded (and at 0
    the queue closes); a resolver that fails is logged and asked again next tick."""
    resolver = _resolver()
    if resolver is None:
        return
    try:
        answer = resolver(queue)
    except Exception:
        log.exception("STOCK_RESOLVER failed", extra={"queue": queue.slug})
        return
    left = None if answer is None else max(0, int(answer))
    # Only a new answer is written: most ticks ask and hear what the row says already.
    if Queue.objects.filter(pk=queue.pk).values_list("stock", flat=True).first() != left:
        set_stock(queue, left)
