"""Selling tickets: take stock under a row lock, record the order, release the pass.

The event row is locked (SELECT ... FOR UPDATE) for the length of one short transaction, so
concurrent buyers take turns on the stock and nothing is oversold; the order's unique pass id
means one pass buys once. The queue counts the same stock (its ``stock``, set when the sale
opens): ``ticketqueue.release(pass, tickets=n)`` takes each order off it, and at zero the queue
closes by itself, which tells everyone still waiting.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction

import ticketqueue
from ticketqueue import services
from ticketqueue.core import InvalidTransition, PassClaims, TicketQueueError

from .models import Event, Order

__all__ = [
    "NotEnoughTickets",
    "PassAlreadyUsed",
    "SaleError",
    "SoldOut",
    "TooManyTickets",
    "close_if_sold_out",
    "purchase",
]

log = logging.getLogger("demo_project.shop")


class SaleError(Exception):
    """A purchase the shop refuses; ``code`` is stable, ``message`` is for people."""

    code = "sale_error"
    message = "The purchase could not be completed."
    status = 400

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class SoldOut(SaleError):
    code = "sold_out"
    message = "Sorry, this event is sold out."
    status = 409


class NotEnoughTickets(SaleError):
    code = "not_enough_tickets"
    message = "There are not that many tickets left."
    status = 409


class TooManyTickets(SaleError):
    code = "too_many_tickets"
    message = "That is more tickets than one order may buy."
    status = 400


class PassAlreadyUsed(SaleError):
    code = "pass_already_used"
    message = "This queue pass has already bought its tickets."
    status = 409


def purchase(event: Event, *, claims: PassClaims, user: Any = None, quantity: int = 1) -> Order:
    """Sell ``quantity`` tickets of ``event`` to the holder of this pass, which the purchase
    gate (HasQueuePass, queue_pass_required) has checked for the event's queue.

    The pass is released once the order is committed, freeing its slot in the queue at once.
    """
    if not 1 <= quantity <= event.max_per_order:
        raise TooManyTickets()
    try:
        with transaction.atomic():
            locked = Event.objects.select_for_update().get(pk=event.pk)
            if locked.stock == 0:
                raise SoldOut()
            if locked.stock < quantity:
                raise NotEnoughTickets()
            # Orders of this event are made under its row lock, so this look is race-free;
            # the unique pass id stays the last word.
            if Order.objects.filter(pass_jti=claims.jti).exists():
                raise PassAlreadyUsed()
            order = Order.objects.create(
                event=locked,
                user=user if getattr(user, "is_authenticated", False) else None,
                identity=claims.identity,
                quantity=quantity,
                amount=locked.price * quantity,
                pass_jti=claims.jti,
                queue_seq=claims.seq,
            )
            locked.stock -= quantity
            locked.save(update_fields=["stock"])
    except IntegrityError:
        raise PassAlreadyUsed() from None
    event.stock = locked.stock
    log.info(
        "order completed",
        extra={"event": event.slug, "order": order.pk, "seq": claims.seq, "left": locked.stock},
    )
    # The order is committed: from here on nothing may turn it into an error for the buyer.
    _release(event, claims, quantity)
    if locked.stock == 0:  # the queue closed itself at zero; this heals a release that failed
        try:
            close_if_sold_out(event)
        except DatabaseError:
            log.warning(
                "sold out, queue not closed yet", exc_info=True, extra={"event": event.slug}
            )
    return order


def _release(event: Event, claims: PassClaims, quantity: int) -> None:
    """The order is committed: free the pass's slot now rather than at its expiry, and take
    its tickets off the queue's stock (people far behind hear when it will likely run out
    first; at zero the queue closes)."""
    if event.queue is None:
        return
    try:
        ticketqueue.release(claims, tickets=quantity)
    except TicketQueueError as exc:
        # Already released (a retried request) or the store is briefly away: the order
        # stands and the pass can never buy again; at worst its slot frees at expiry.
        log.warning("pass not released", extra={"jti": claims.jti, "code": exc.code})


def close_if_sold_out(event: Event) -> bool:
    """Close the event's queue once nothing is left to sell; True if this call closed it."""
    queue = event.queue
    if queue is None or queue.state == queue.State.CLOSED:
        return False
    if Event.objects.filter(pk=event.pk, stock=0).exists():
        try:
            turned_away = services.close(queue)
        except InvalidTransition:
            return False  # another process closed it first
        log.info("sold out, queue closed", extra={"event": event.slug, "revoked": turned_away})
        return True
    return False
