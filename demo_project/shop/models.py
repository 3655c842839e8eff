"""The shop's own records: events with limited stock, and the orders that take it.

Each event sells through one ticketqueue Queue, linked by the Queue's generic relation.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from ticketqueue.models import Queue


class Event(models.Model):
    """Something people buy tickets for; ``stock`` is what is left to sell."""

    slug = models.SlugField(
        _("slug"), unique=True, help_text=_("Names the event in URLs; its queue has the same.")
    )
    name = models.CharField(_("name"), max_length=200, help_text=_("What people buy for."))
    venue = models.CharField(_("venue"), max_length=200, blank=True, help_text=_("Where."))
    starts_at = models.DateTimeField(_("starts at"), help_text=_("When the event begins."))
    description = models.TextField(_("description"), blank=True, help_text=_("Shown on its page."))
    price = models.DecimalField(
        _("price"),
        max_digits=8,
        decimal_places=2,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text=_("Price of one ticket."),
    )
    currency = models.CharField(
        _("currency"), max_length=3, default="EUR", help_text=_("ISO 4217 code of the price.")
    )
    total = models.PositiveIntegerField(
        _("tickets on sale"), help_text=_("How many tickets the sale started with.")
    )
    stock = models.PositiveIntegerField(
        _("tickets left"), help_text=_("Tickets not sold yet; the queue closes when it is 0.")
    )
    max_per_order = models.PositiveSmallIntegerField(
        _("most tickets per order"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text=_("How many tickets one pass may buy."),
    )
    queues = GenericRelation(Queue, content_type_field="content_type", object_id_field="object_id")

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["starts_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(stock__gte=0) & models.Q(stock__lte=models.F("total")),
                name="shop_event_stock_within_total",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("shop:event", args=[self.slug])

    @cached_property
    def queue(self) -> Queue | None:
        """The event's waiting room (one per event)."""
        return self.queues.first()

    @property
    def sold_out(self) -> bool:
        return self.stock == 0


class Order(models.Model):
    """A completed purchase: each order is backed by exactly one queue pass."""

    event = models.ForeignKey(
        Event,
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name=_("event"),
        help_text=_("What was bought."),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="ticket_orders",
        verbose_name=_("user"),
        help_text=_("The buyer's account; empty for an anonymous buyer."),
    )
    identity = models.CharField(
        _("identity"),
        max_length=100,
        help_text=_("Who held the pass: 'user:<id>' or 'anon:<id>'."),
    )
    quantity = models.PositiveSmallIntegerField(
        _("quantity"), validators=[MinValueValidator(1)], help_text=_("Tickets in this order.")
    )
    amount = models.DecimalField(
        _("amount"), max_digits=10, decimal_places=2, help_text=_("Price times quantity.")
    )
    pass_jti = models.CharField(
        _("pass id"),
        max_length=64,
        unique=True,
        help_text=_("The jti of the queue pass that bought it: one order per pass."),
    )
    queue_seq = models.BigIntegerField(
        _("entry sequence"), help_text=_("The queue entry (seq) whose pass bought it.")
    )
    created_at = models.DateTimeField(
        _("created at"), auto_now_add=True, help_text=_("When the order completed.")
    )

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.quantity} x {self.event}"

    def get_absolute_url(self) -> str:
        return reverse("shop:order", args=[self.pk])


def open_sale(event: Event, **knobs: Any) -> Queue:
    """Give ``event`` its queue (one per event), or return the one it has.

    ``knobs`` are Queue fields (capacity, rate_per_minute, purchase_window, mode...). A new
    queue is loaded into the store at once, replacing anything a store kept under its id.
    """

    existing = event.queues.first()
    if existing is not None:
        return existing
    queue = Queue.objects.create(
        slug=event.slug,
        name=event.name,
        content_type=ContentType.objects.get_for_model(Event),
        object_id=str(event.pk),
        stock=event.stock,  # counted down by each order's release; at zero the queue closes
        **knobs,
    )
    _load(queue)
    event.__dict__["queue"] = queue
    return queue


#: How long open_sale waits for another process (the ticker) that is loading the new queue.
LOAD_WAIT = 10.0


def _load(queue: Queue) -> None:
    """Load the new queue into the store. A ticker that saw the row first may be loading it
    already: ``rebuild`` then answers QueueUnavailable, and (as its contract asks) is tried
    again once that load is done."""
    from ticketqueue import services
    from ticketqueue.core import QueueUnavailable

    deadline = time.monotonic() + LOAD_WAIT
    while True:
        try:
            services.rebuild(queue)
            return
        except QueueUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
