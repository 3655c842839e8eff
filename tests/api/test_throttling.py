"""The join and status throttles: both scopes in one store call, all or nothing."""

import logging

import pytest
from django.test import Client

from ticketqueue import limits
from ticketqueue.conf import DEFAULTS
from ticketqueue.core import StoreUnreachable
from ticketqueue.store import get_store

from ..conftest import commands_sent
from .conftest import code_of

pytestmark = pytest.mark.django_db(transaction=True)

API = "/queue/api/queues"


@pytest.fixture
def rates(settings, clock, monkeypatch):
    """Set THROTTLE_RATES (the scopes not given are off); the throttles use the test clock."""
    monkeypatch.setattr(limits, "timer", clock)

    def set_rates(**given):
        settings.TICKETQUEUE = {
            **settings.TICKETQUEUE,
            "THROTTLE_RATES": {scope: given.get(scope) for scope in DEFAULTS["THROTTLE_RATES"]},
        }

    return set_rates


def join(client, **extra):
    return client.post(f"{API}/sale/join/", **extra)


def status(client, **extra):
    return client.get(f"{API}/sale/status/", **extra)


def assert_throttled(response, most):
    assert code_of(response) == (429, "throttled")
    assert 0 < int(response["Retry-After"]) <= most


def test_join_is_throttled_per_identity(make_queue, rates, clock):
    make_queue(mode="always")
    rates(join_identity="2/min", join_ip="100/min")
    client = Client()
    assert join(client).status_code == 200  # mints the visitor id: counted by address only
    assert [join(client).status_code for _ in range(2)] == [200, 200]
    assert_throttled(join(client), 120)
    # Another visitor at the same address has its own allowance.
    other = Client()
    assert [join(other).status_code for _ in range(3)] == [200, 200, 200]
    assert join(other).status_code == 429
    # Two minutes later the window has slid past it all.
    clock.advance(120)
    assert join(client).status_code == 200


def test_join_is_throttled_per_address(make_queue, rates):
    make_queue(mode="always")
    rates(join_ip="3/min")
    assert [join(Client()).status_code for _ in range(3)] == [200, 200, 200]
    assert_throttled(join(Client()), 120)
    # Other addresses, IPv6 ones included, count apart.
    for address in ("10.0.0.2", "2001:db8::1", "::1"):
        assert join(Client(), REMOTE_ADDR=address).status_code == 200
        assert join(Client(), REMOTE_ADDR=address).status_code == 200


def test_a_refused_request_uses_up_nothing(make_queue, rates, clock):
    make_queue(mode="always")
    rates(join_identity="1/min", join_ip="3/min")
    client = Client()
    assert join(client).status_code == 200  # address 1
    assert join(client).status_code == 200  # address 2, identity 1
    for _ in range(10):  # over the identity's limit: the address's allowance stays
        assert join(client).status_code == 429
    assert join(Client()).status_code == 200  # address 3
    assert_throttled(join(Client()), 120)
    # Refused calls did not push the identity's window on either.
    clock.advance(120)
    assert join(client).status_code == 200


def test_status_is_throttled_per_identity_and_per_address(make_queue, rates, clock):
    make_queue(mode="always")
    rates(status_identity="2/min", status_ip="4/min", join_ip="100/min")
    client = Client()
    assert join(client).status_code == 200  # join has its own scopes
    assert [status(client).status_code for _ in range(3)] == [200, 200, 429]
    assert_throttled(status(client), 120)
    other = Client()
    assert [status(other).status_code for _ in range(3)] == [200, 200, 429]  # address: 4
    assert_throttled(status(other), 120)
    assert status(Client(), REMOTE_ADDR="10.0.0.9").status_code == 200
    clock.advance(120)
    assert status(client).status_code == 200


def test_an_unknown_queue_is_not_found_not_throttled(make_queue, rates):
    make_queue(mode="always")
    rates(join_ip="1/min")
    for _ in range(3):
        assert code_of(Client().post(f"{API}/nope/join/"))[0] == 404


def test_an_unreachable_store_lets_requests_through(make_queue, rates, monkeypatch, caplog):
    # The status throttle's (the join counts its limits in its own store step: one failure).
    make_queue(mode="always")
    rates(status_ip="1/min", status_identity="1/min")
    monkeypatch.setattr(limits, "_last_logged", float("-inf"))
    store = get_store()

    def unreachable(*args, **kwargs):
        raise StoreUnreachable()

    monkeypatch.setattr(store, "hit_limits", unreachable)
    monkeypatch.setattr(store, "hit_limits_many", unreachable)
    client = Client()
    with caplog.at_level(logging.WARNING, logger="ticketqueue.limits"):
        assert [status(client).status_code for _ in range(3)] == [200, 200, 200]
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1


def count_commands(monkeypatch):
    """The commands the current store's Redis client sends from now on (a settings change
    makes a new store: count after it)."""
    store = get_store()
    if not hasattr(store, "client"):
        pytest.skip("counts Redis round trips")
    return commands_sent(monkeypatch, store.client)


def test_both_scopes_cost_one_round_trip(make_queue, rates, monkeypatch):
    make_queue(mode="always")
    rates(status_identity="2/min", status_ip="100/min", join_ip="100/min")
    client = Client()
    join(client)  # mints the visitor id; the scripts are loaded, the row cached
    status(client)  # the identity's first status
    sent = count_commands(monkeypatch)
    assert status(client).status_code == 200  # the throttle's call, then the status's
    assert sent == ["EVALSHA"] * 2
    assert status(client).status_code == 429  # the throttle's call, and no status
    assert sent == ["EVALSHA"] * 3


def test_a_join_counts_its_limits_in_its_own_round_trip(make_queue, rates, monkeypatch):
    make_queue(mode="always")
    rates(join_identity="2/min", join_ip="100/min", visitor_ip="100/min")
    join(Client())  # the scripts are loaded, the row cached
    sent = count_commands(monkeypatch)
    client = Client()
    assert join(client).status_code == 200  # a new visitor: join_ip and visitor_ip, and a place
    assert sent == ["EVALSHA"]
    assert [join(client).status_code for _ in range(2)] == [200, 200]  # join_identity: 2
    assert sent == ["EVALSHA"] * 3
    assert_throttled(join(client), 120)  # refused in the same step: no place asked for
    assert sent == ["EVALSHA"] * 4


def test_throttles_turned_off_cost_nothing(make_queue, rates, monkeypatch):
    make_queue(mode="always")
    rates()
    client = Client()
    join(client)
    sent = count_commands(monkeypatch)
    assert join(client).status_code == 200  # the join's call only
    assert status(client).status_code == 200  # the status's call only
    assert sent == ["EVALSHA"] * 2


def test_a_rotated_x_forwarded_for_does_not_escape_the_address_limit(make_queue, rates):
    # Without trusted proxies (the default) the header is the client's own words: ignored.
    make_queue(mode="always")
    rates(join_ip="5/min")
    codes = [join(Client(), HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(8)]
    assert codes == [200] * 5 + [429] * 3


def test_behind_a_trusted_proxy_the_address_it_saw_is_counted(make_queue, rates, settings):
    make_queue(mode="always")
    rates(join_ip="2/min")
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "TRUSTED_PROXIES": 1}
    # nginx appends the address it saw; what the client wrote before it is not believed.
    for forged in ("10.0.0.1", "10.0.0.2"):
        assert join(Client(), HTTP_X_FORWARDED_FOR=f"{forged}, 203.0.113.7").status_code == 200
    assert join(Client(), HTTP_X_FORWARDED_FOR="10.0.0.3, 203.0.113.7").status_code == 429
    # Another client behind the same proxy has its own allowance.
    assert join(Client(), HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200
