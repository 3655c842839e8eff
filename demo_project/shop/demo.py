"""The demo's data: a few events on sale, an admin account, and a crowd on demand."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from ticketqueue import services
from ticketqueue.core import QueueClosed, QueueFull

from .models import Event, open_sale
from .signals import CROWD_PREFIX

ADMIN_USERNAME = "admin"

#: (slug, name, venue, days ahead, price, stock, queue knobs)
EVENTS = [
    (
        "opening-night",
        "Midnight Orchestra: Opening Night",
        "Grand Hall",
        30,
        "89.00",
        200,
        {
            "mode": "always",
            "capacity": 10,
            "rate_per_minute": 60,
            "purchase_window": 300,
            # people away from the page hear these too (docs/notifications.md)
            "notify_within": 10,
            "notify_minutes_left": 5,
        },
    ),
    (
        "summer-festival",
        "Summer Festival, Day Pass",
        "Riverside Park",
        60,
        "45.00",
        1000,
        {"mode": "auto", "capacity": 50, "purchase_window": 600},
    ),
    (
        "last-chance",
        "The Farewell Tour: Last Chance",
        "Old Theatre",
        7,
        "120.00",
        5,
        {"mode": "always", "capacity": 2, "rate_per_minute": 20, "purchase_window": 180},
    ),
]


@transaction.atomic
def load_events() -> list[Event]:
    """Create the demo events and their queues; existing ones are left as they are."""
    events = []
    now = timezone.now()
    for slug, name, venue, days, price, stock, knobs in EVENTS:
        event, _ = Event.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "venue": venue,
                "starts_at": now + timedelta(days=days),
                "price": Decimal(price),
                "total": stock,
                "stock": stock,
                "description": f"{name} at {venue}. Tickets go on sale through the waiting room.",
            },
        )
        open_sale(event, **knobs)
        events.append(event)
    return events


def reset_admin_password() -> tuple[str, str]:
    """Create the admin account, or give it a fresh password; returns (username, password).

    The password is made here and shown once: nothing secret lives in the repository.
    """
    password = secrets.token_urlsafe(12)
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True}
    )
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return ADMIN_USERNAME, password


@dataclass(frozen=True)
class Crowd:
    joined: int
    position_of_next: int | None


def add_crowd(event: Event, count: int) -> Crowd:
    """Put ``count`` simulated people in line, so the next visitor has someone ahead."""
    queue = event.queue
    if queue is None:
        return Crowd(0, None)
    joined = 0
    last = None
    for _ in range(count):
        try:
            last = services.join(queue, f"{CROWD_PREFIX}{uuid.uuid4().hex[:27]}")
        except (QueueClosed, QueueFull):
            break
        joined += 1
    waiting = last.waiting if last is not None else None
    return Crowd(joined, None if waiting is None else waiting + 1)
