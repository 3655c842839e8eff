import pytest
from django.core.cache import cache
from django.test import Client

from ticketqueue import gate, passes, revocation, services
from ticketqueue.api import queue_rows
from ticketqueue.models import Queue
from ticketqueue.store import get_store, reset_store

from ..conftest import drop_store

T0 = 1_800_000_000.0


@pytest.fixture(autouse=True)
def _fresh(settings):
    """Every test starts with an empty store, no cached slugs, throttles or tracker."""
    settings.ROOT_URLCONF = "tests.api.urls"
    reset_store()
    revocation.reset_tracker()
    gate.forget_queues()
    queue_rows.forget_rows()
    cache.clear()
    yield
    revocation.reset_tracker()
    drop_store(get_store())
    reset_store()
    gate.forget_queues()
    queue_rows.forget_rows()
    cache.clear()


@pytest.fixture
def store_calls(monkeypatch):
    """Counts the store round trips of pass checks (the gate, the access check)."""
    calls = []
    store = get_store()
    original = store.pass_active

    def counted(queue_id, seq, now):
        calls.append((queue_id, seq))
        return original(queue_id, seq, now)

    monkeypatch.setattr(store, "pass_active", counted)
    return calls


@pytest.fixture
def clock(clock, monkeypatch):
    """One injected clock for the services and the pass checks."""
    clock.now = T0
    monkeypatch.setattr(services, "clock", clock)
    monkeypatch.setattr(passes, "timer", clock)
    return clock


@pytest.fixture
def make_queue(clock):
    def make(slug="sale", **fields):
        fields.setdefault("name", f"The {slug}")
        fields.setdefault("mode", "auto")
        fields.setdefault("capacity", 10)
        queue = Queue.objects.create(slug=slug, **fields)
        services.configure(queue, clock())
        return queue

    return make


@pytest.fixture
def queue(make_queue):
    return make_queue()


class Visitor:
    """A browser or API client: a test client with its own visitor cookie."""

    def __init__(self) -> None:
        self.client = Client()
        self.token: str | None = None

    def join(self, slug="sale"):
        response = self.client.post(f"/queue/api/queues/{slug}/join/")
        assert response.status_code == 200, response.content
        self.token = response.json()["pass"]
        return response

    @property
    def visitor_cookie(self) -> str:
        return self.client.cookies["tq_visitor"].value

    def buy(self, path="/buy/sale/", token=None, transport="authorization", **extra):
        token = self.token if token is None else token
        if transport == "authorization":
            extra["HTTP_AUTHORIZATION"] = f"QueuePass {token}"
        elif transport == "header":
            extra["HTTP_X_QUEUE_PASS"] = token
        return self.client.get(path, **extra)


@pytest.fixture
def visitor(queue):
    return Visitor()


@pytest.fixture
def admitted(visitor):
    """A visitor who joined an auto-mode queue with room, so holds a pass at once."""
    visitor.join()
    assert visitor.token
    return visitor


def code_of(response):
    return response.status_code, response.json()["code"]
