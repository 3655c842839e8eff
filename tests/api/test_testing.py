"""ticketqueue.testing, as a site's tests use it: a buyer admitted through the real path whose
next request passes the gate, a frozen clock that expires the pass, and the pytest plugin (loaded
for this suite with ``-p ticketqueue.testing`` in pyproject.toml, as a site would)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from ticketqueue import services
from ticketqueue.testing import admit, frozen_clock

from .conftest import code_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def line(make_queue):
    """A queue where everyone waits: two people ahead of the buyer."""
    queue = make_queue(mode="always")
    for identity in ("anon:" + "a" * 32, "anon:" + "b" * 32):
        services.join(queue, identity)
    return queue


def test_the_fixture_admits_a_visitor_whose_next_request_passes_the_gate(line, ticketqueue_pass):
    client = Client()
    token = ticketqueue_pass(line, client=client)
    response = client.get("/buy/sale/")  # the pass and the visitor id travel as cookies
    assert response.status_code == 200
    assert response.json()["seq"] == 3
    # In order: the two ahead were admitted with the buyer, nobody jumped the line.
    assert [services.status(line, "anon:" + c * 32).state for c in "ab"] == ["admitted"] * 2
    assert admit(line, client=client) == token  # idempotent, as a join is


def test_a_logged_in_user(line):
    user = get_user_model().objects.create_user("buyer", password="x")  # noqa: S106
    client = Client()
    client.force_login(user)
    admit(line, user, client=client)
    assert client.get("/buy/sale/").json()["identity"] == f"user:{user.pk}"


def test_the_frozen_clock_expires_the_pass(line, ticketqueue_clock):
    client = Client()
    admit(line, client=client)
    ticketqueue_clock.advance(line.purchase_window - 1)
    assert client.get("/buy/sale/").status_code == 200
    ticketqueue_clock.advance(1)
    assert code_of(client.get("/buy/sale/")) == (403, "pass_expired")


def test_the_clock_is_given_back(line):
    before = services.clock
    with frozen_clock(at=2_000_000_000.0) as clock:
        assert services.clock() == clock() == 2_000_000_000.0
    assert services.clock is before


def test_no_room_and_no_buyer_are_errors(make_queue):
    full = make_queue(mode="always", capacity=1)
    admit(full, client=Client())
    with pytest.raises(RuntimeError, match="capacity"):
        admit(full, client=Client())
    with pytest.raises(TypeError):
        admit(full)
