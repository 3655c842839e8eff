"""The shop's pages: events, an event's page with the queue widget, checkout, the order.

Checkout is a plain Django view guarded by ``queue_pass_required``; the JSON purchase API
(for the mobile app and the load test) is in ``api.py``, guarded by ``HasQueuePass``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ticketqueue.gate import queue_pass_required
from ticketqueue.identity import ensure_visitor
from ticketqueue.models import Queue

from . import sales
from .demo import add_crowd
from .models import Event, Order


def event_list(request: HttpRequest) -> HttpResponse:
    events = list(Event.objects.all())
    return render(request, "shop/event_list.html", {"events": events, "demo_tools": settings.DEBUG})


def event_detail(request: HttpRequest, slug: str) -> HttpResponse:
    event = get_object_or_404(Event, slug=slug)
    if event.sold_out:
        sales.close_if_sold_out(event)  # heals a close that failed after the last sale
    response = render(
        request,
        "shop/event_detail.html",
        {
            "event": event,
            "queue": event.queue,
            "checkout_url": reverse("shop:checkout", args=[event.slug]),
        },
    )
    ensure_visitor(request, response)
    return response


def _event_queue(request: HttpRequest, slug: str) -> Queue:
    """The queue a checkout request needs a pass for: the event's own."""
    event = get_object_or_404(Event, slug=slug)
    if event.queue is None:
        raise Http404("This event sells without a queue.")
    return event.queue


@queue_pass_required(queue=_event_queue)
def checkout(request: HttpRequest, slug: str) -> HttpResponse:
    event = get_object_or_404(Event, slug=slug)
    queue_pass = request.queue_pass
    if request.method == "POST":
        try:
            quantity = int(request.POST.get("quantity", "1"))
        except ValueError:
            quantity = 0
        try:
            order = sales.purchase(event, claims=queue_pass, user=request.user, quantity=quantity)
        except sales.SaleError as exc:
            messages.error(request, exc.message)
            if isinstance(exc, sales.SoldOut | sales.PassAlreadyUsed):
                return redirect(event)
        else:
            request.session[f"shop.order.{order.pk}"] = True
            return redirect(order)
    return render(
        request,
        "shop/checkout.html",
        {
            "event": event,
            "queue_pass": queue_pass,
            "pass_expires_at": datetime.fromtimestamp(queue_pass.expires_at, tz=UTC),
            "quantities": range(1, min(event.max_per_order, event.stock) + 1),
        },
    )


def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("event"), pk=pk)
    owner = request.user.is_authenticated and order.user_id == request.user.pk
    if not (owner or request.session.get(f"shop.order.{pk}") or request.user.is_staff):
        raise Http404()
    return render(request, "shop/order_detail.html", {"order": order})


@require_POST
def demo_crowd(request: HttpRequest, slug: str) -> HttpResponse:
    """Demo tool (DEBUG only): put simulated people in line ahead of the next visitor."""
    if not settings.DEBUG:
        raise Http404()
    event = get_object_or_404(Event, slug=slug)
    try:
        count = max(1, min(int(request.POST.get("count", "20")), 200))
    except ValueError:
        count = 20
    crowd = add_crowd(event, count)
    messages.info(request, f"{crowd.joined} people joined the line ahead of you.")
    return redirect(event)
