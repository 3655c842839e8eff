"""The default waiting-room page: the widget for one queue, ready for a site to override
(``ticketqueue/waiting_room.html``). It also gives a new visitor the signed visitor cookie the
socket needs.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from . import invites
from .conf import queue_settings
from .identity import ensure_visitor
from .models import Queue

__all__ = ["base_template", "checkout_url_for", "waiting_room"]


def base_template() -> str:
    """The template the waiting page extends: WAITING_BASE_TEMPLATE, else the site's own
    ``base.html`` where it has one, else ticketqueue's."""
    configured = queue_settings.WAITING_BASE_TEMPLATE
    if configured:
        return str(configured)
    try:
        get_template("base.html")
    except TemplateDoesNotExist:
        return "ticketqueue/base.html"
    return "base.html"


def checkout_url_for(request: HttpRequest, queue: Queue) -> str:
    """Where a granted visitor goes: a safe ``?next=``, else the sold object's page, else /."""
    wanted = request.GET.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    event: Any = queue.event if queue.content_type_id else None
    if event is not None and hasattr(event, "get_absolute_url"):
        return str(event.get_absolute_url())
    return "/"


@never_cache
def waiting_room(request: HttpRequest, slug: str) -> HttpResponse:
    queue = get_object_or_404(Queue, slug=slug)
    response = render(
        request,
        "ticketqueue/waiting_room.html",
        {
            "queue": queue,
            "checkout_url": checkout_url_for(request, queue),
            "base_template": base_template(),
            # An invite link (?invite=): the widget brings it to its join.
            "invite": request.GET.get("invite", "")[: invites.MAX_INVITE],
        },
    )
    ensure_visitor(request, response, queue)  # the socket cannot set the cookie
    return response
