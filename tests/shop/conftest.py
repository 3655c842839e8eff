import itertools

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from demo_project.shop.models import Event, open_sale
from ticketqueue import gate, revocation, services
from ticketqueue.identity import new_visitor_cookie

from ..live.conftest import hub, live_settings, make_queue  # noqa: F401 - the demo socket's tests

_numbers = itertools.count(1)


@pytest.fixture
def live_store(live_store):
    """The shared live store, with the pass tracker and the gate's slug cache fresh too."""
    revocation.reset_tracker()
    gate.forget_queues()
    yield live_store
    revocation.reset_tracker()
    gate.forget_queues()


@pytest.fixture
def make_event(live_store):
    def make(stock=10, **knobs):
        n = next(_numbers)
        from django.utils import timezone

        event = Event.objects.create(
            slug=f"show-{n}",
            name=f"Show {n}",
            starts_at=timezone.now(),
            total=stock,
            stock=stock,
            max_per_order=knobs.pop("max_per_order", 1),
        )
        knobs.setdefault("mode", "auto")
        knobs.setdefault("capacity", 100)
        open_sale(event, **knobs)
        return event

    return make


@pytest.fixture
def buyer():
    """A user with a JWT-authenticated API client; ``.join(event)`` gets them a pass."""

    def make(name=None):
        user = get_user_model().objects.create_user(name or f"buyer{next(_numbers)}")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
        client.user = user
        client.identity = f"user:{user.pk}"
        return client

    return make


@pytest.fixture
def visitor():
    """An anonymous API client proving its signed visitor id in the X-Queue-Visitor header."""

    def make():
        visitor_id, signed = new_visitor_cookie()
        client = APIClient(HTTP_X_QUEUE_VISITOR=signed)
        client.identity = f"anon:{visitor_id}"
        return client

    return make


def pass_for(event, identity):
    """Join the event's queue; the token once admitted (auto mode admits at once)."""
    status = services.join(event.queue, identity)
    return status.pass_token
