"""``{% load ticketqueue %}{% queue_widget queue %}``: the live waiting-room widget.

The widget is plain JS configured by ``data-*`` attributes; its strings are translated here and
handed to it as a small catalog.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from django import template
from django.conf import settings
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext

from ..captcha import browser_side
from ..conf import queue_settings
from ..routing import WS_PATH

register = template.Library()

_ids = itertools.count(1)


def catalog() -> dict[str, str]:
    """The widget's translated strings; ``%(name)s`` placeholders are filled in by the JS."""
    return {
        "connecting": gettext("Connecting to the waiting room…"),
        "reconnecting": gettext("Connection lost. Reconnecting…"),
        "not_joined": gettext("You are not in line."),
        "waiting": gettext("You are in line. Keep this page open: your place is kept."),
        "position": gettext("Your place in line: %(position)s. Estimated wait: %(eta)s."),
        "granted": gettext("It's your turn! You can buy your tickets now."),
        "granted_until": gettext("Your pass is valid until %(time)s."),
        "revoked_expired": gettext("Your purchase window has ended."),
        "revoked_released": gettext("Your purchase is complete."),
        "revoked_operator": gettext("Your place was cancelled by the organiser."),
        "revoked_closed": gettext("The sale has ended or sold out."),
        "revoked_abandoned": gettext(
            "Your pass ended because you were away too long; the place went to the next in line."
        ),
        "left_left": gettext("You left the line."),
        "left_abandoned": gettext("Your place lapsed because you were away too long."),
        "closed": gettext("The sale has ended or sold out."),
        "milestone_near": gettext(
            "You are within %(within)s places of the front. Stay close: your turn is coming."
        ),
        "milestone_soon": gettext("About %(minutes)s minutes to your turn. Stay close."),
        "milestone_ending": gettext(
            "Your pass ends at %(time)s. Finish your purchase before then."
        ),
        "paused": gettext("The line is paused for a moment. Your place is kept."),
        "scheduled": gettext(
            "The sale has not opened yet. At opening, everyone already here gets a random place."
        ),
        "opening": gettext("Opening now…"),
        "days": gettext("%(days)s d %(time)s"),
        "drawing": gettext("The sale has opened: your random place is being drawn…"),
        "eta_unknown": gettext("unknown"),
        "eta_now": gettext("any moment now"),
        "eta_under_minute": gettext("less than a minute"),
        "eta_minutes": gettext("about %(minutes)s min"),
        "eta_hours": gettext("about %(hours)s h %(minutes)s min"),
        "error": gettext("Something went wrong (%(code)s). Please try again."),
        "error_identity_required": gettext("Please reload this page to take your place."),
        "error_queue_not_found": gettext("This waiting room does not exist."),
        "error_queue_full": gettext("The line is full. Please try again later."),
        "error_pass_limit_reached": gettext("You already had your turn in this queue."),
        "error_login_required": gettext("Log in to take your place in this line."),
        "error_queue_closed": gettext("The sale has ended or sold out."),
        "error_queue_unavailable": gettext("The waiting room is busy. Retrying…"),
        "error_rate_limited": gettext("Too many requests. Please wait a moment."),
        "error_invite_required": gettext(
            "This sale is by invitation: open the link from your invitation."
        ),
        "error_invite_invalid": gettext(
            "This invitation cannot be used: it has expired or was used up."
        ),
        "error_device_replaced": gettext(
            "You opened this line on another device, so your place moved there."
        ),
        "error_device_in_use": gettext(
            "Your turn came on another of your devices: finish your purchase there."
        ),
        "proving": gettext("Checking your browser before you take your place…"),
        "error_proof": gettext("Your browser could not be checked. Please reload the page."),
        "error_captcha_failed": gettext("The check was not passed. Please try again."),
        "error_captcha_unavailable": gettext(
            "The check cannot be reached right now. Please try again in a moment."
        ),
        "error_throttled": gettext(
            "Many people are joining from your network. Trying again in a moment…"
        ),
    }


@register.inclusion_tag("ticketqueue/widget.html")
def queue_widget(
    queue: Any,
    checkout_url: str = "",
    auto_join: bool = True,
    ws_url: str | None = None,
    status_url: str | None = None,
    show_name: bool = True,
    captcha: str = "",
    invite: str = "",
) -> dict[str, Any]:
    """Render the widget for ``queue`` (a Queue or its slug).

    ``checkout_url``: where the granted visitor goes (none: no link; the page can listen for
    the ``ticketqueue:granted`` event); ``auto_join``: take a place on load;
    ``ws_url``/``status_url``: override the socket path and the REST status URL (which sets
    the HttpOnly pass cookie once the visitor is granted); ``show_name``: the queue's name as
    the widget's title; ``captcha``: the name of the page's global function that shows the
    CAPTCHA when the queue asks for one (given the widget's captcha element, it returns a
    Promise of the token; docs/protection.md); ``invite``: an invite token the widget brings to
    its join (a queue of invited people). A scheduled Queue counts down to its opening time.
    """
    slug = getattr(queue, "slug", queue)
    if status_url is None:
        try:
            status_url = reverse("ticketqueue:api:status", kwargs={"queue": slug})
        except NoReverseMatch:
            status_url = ""
    opens_at = getattr(queue, "opens_at", None)
    scheduled = opens_at is not None and getattr(queue, "state", None) == "scheduled"
    return {
        "opens_at": int(opens_at.timestamp()) if scheduled else None,
        # The countdown runs on the server's clock, not on the visitor's (which may be off).
        "server_now": int(time.time()),
        "widget_id": f"tq-{slug}-{next(_ids)}",
        "slug": slug,
        "name": getattr(queue, "name", "") if show_name else "",
        "ws_url": ws_url or "/" + WS_PATH.format(slug=slug),
        "checkout_url": checkout_url,
        "status_url": status_url,
        "login_url": resolve_url(settings.LOGIN_URL),
        "auto_join": bool(auto_join),
        "captcha": captcha,
        "invite": invite,
        "captcha_side": browser_side(),
        "heartbeat": float(queue_settings.HEARTBEAT_INTERVAL),
        "catalog": json.dumps(catalog()),
    }
