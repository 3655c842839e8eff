"""The purchase gate: transports, no SQL, at most one store round trip, exact revocation across
processes by pub/sub, the store-failure policy, and the plain-view guard."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from ticketqueue import gate, revocation, services
from ticketqueue.core import pass_jti
from ticketqueue.store import get_store
from ticketqueue.store.memory import MemoryStore

from .conftest import Visitor, code_of

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(condition, timeout=5.0):
    """Waits for another thread (the subscriber), never for time itself to pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def pubsub_tracker():
    tracker = revocation.get_tracker()
    if not isinstance(tracker, revocation.PubSubTracker):
        pytest.skip("pub/sub needs the Redis store")
    tracker.start()
    assert tracker.subscribed.wait(5)
    return tracker


@pytest.mark.parametrize("transport", ["authorization", "header", "cookie"])
def test_each_transport(admitted, transport):
    response = admitted.buy(transport=transport)
    assert response.status_code == 200
    assert response.json()["identity"].startswith("anon:")


def test_authorization_scheme_is_case_insensitive(admitted):
    response = admitted.client.get("/buy/sale/", HTTP_AUTHORIZATION=f"queuepass {admitted.token}")
    assert response.status_code == 200


def test_the_view_sees_the_claims(admitted, queue):
    body = admitted.buy().json()
    assert body == {"queue": queue.store_id, "seq": 1, "identity": body["identity"]}


def test_a_protected_request_runs_no_sql(admitted, django_assert_num_queries):
    admitted.buy()  # the slug -> queue id lookup is cached per process
    with django_assert_num_queries(0):
        assert admitted.buy().status_code == 200
    with django_assert_num_queries(0):
        assert admitted.buy(path="/plain/sale/").status_code == 200


def test_at_most_one_store_round_trip(admitted, store_calls):
    assert admitted.buy().status_code == 200
    assert len(store_calls) <= 1
    for _ in range(5):
        assert admitted.buy().status_code == 200
    if isinstance(get_store(), MemoryStore):
        assert len(store_calls) == 6  # in-process: asked every time, for free
    else:
        # Confirmed once while subscribed; then answered from memory.
        pubsub_tracker()
        before = len(store_calls)
        for _ in range(5):
            assert admitted.buy().status_code == 200
        assert len(store_calls) - before <= 1


#: A second process that releases pass 1 of the queue through the services, as a site's order
#: view in another worker does: its real publisher, no forged message.
RELEASE_ELSEWHERE = """
import django, sys
django.setup()
from ticketqueue import services
from ticketqueue.models import Queue
services.release_entry(Queue.objects.get(pk=int(sys.argv[1])), 1)
"""


def test_a_release_by_the_services_in_another_process_reaches_this_one(
    admitted, queue, store_calls
):
    if connection.vendor != "postgresql":
        pytest.skip("the second process shares the test database on PostgreSQL")
    tracker = pubsub_tracker()
    assert admitted.buy().status_code == 200  # confirmed, now trusted from memory
    before = len(store_calls)
    release_elsewhere(queue)
    wait_for(lambda: pass_jti(queue.store_id, 1) in tracker.ended)
    assert code_of(admitted.buy()) == (403, "pass_not_active")
    assert len(store_calls) == before  # refused from what this process heard


def test_a_missed_message_is_covered_by_the_recheck(admitted, queue, store_calls):
    tracker = pubsub_tracker()
    now = [1000.0]
    tracker.monotonic = lambda: now[0]
    assert admitted.buy().status_code == 200
    # Released without any message (a publisher that died in between).
    get_store().release(queue.store_id, 1, services.clock())
    assert admitted.buy().status_code == 200  # trusted for GATE_RECHECK seconds...
    now[0] += tracker.recheck
    assert code_of(admitted.buy()) == (403, "pass_not_active")  # ...then asked again


def release_elsewhere(queue):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PGDATABASE": connection.settings_dict["NAME"],  # the test database itself
    }
    subprocess.run(
        [sys.executable, "-c", RELEASE_ELSEWHERE, str(queue.pk)],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
        timeout=60,
    )


def test_a_pass_admitted_while_listening_is_trusted_from_its_first_use(
    visitor, queue, store_calls, clock, django_assert_num_queries
):
    if connection.vendor != "postgresql":
        pytest.skip("the second process shares the test database on PostgreSQL")
    tracker = pubsub_tracker()
    clock.advance(tracker.skew + 1)  # admitted after the subscription went live (and the skew)
    gate.queue_id_for(queue.slug)  # a warm worker looked the slug up already
    visitor.join()
    with django_assert_num_queries(0):
        assert visitor.buy().status_code == 200
    assert store_calls == []  # its admission was the store's confirmation
    release_elsewhere(queue)  # the order view of another worker, its real publisher
    wait_for(lambda: pass_jti(queue.store_id, 1) in tracker.ended)
    assert code_of(visitor.buy()) == (403, "pass_not_active")
    assert store_calls == []


def test_a_pass_admitted_before_listening_or_long_ago_is_asked(visitor, queue, store_calls, clock):
    tracker = pubsub_tracker()
    visitor.join()  # admitted within the clock skew of the subscription's start
    assert visitor.buy().status_code == 200
    assert len(store_calls) == 1
    late = Visitor()
    clock.advance(tracker.skew + 1)
    late.join()
    clock.advance(tracker.recheck)  # first presented GATE_RECHECK after its admission
    assert late.buy().status_code == 200
    assert len(store_calls) == 2
    assert late.buy().status_code == 200  # and confirmed from then on
    assert len(store_calls) == 2


def test_a_missed_message_is_covered_by_the_recheck_from_the_admission(
    visitor, queue, store_calls, clock
):
    tracker = pubsub_tracker()
    clock.advance(tracker.skew + 1)
    visitor.join()
    get_store().release(queue.store_id, 1, services.clock())  # a publisher that died
    assert visitor.buy().status_code == 200  # trusted for GATE_RECHECK seconds...
    clock.advance(tracker.recheck)
    assert code_of(visitor.buy()) == (403, "pass_not_active")  # ...then asked


def test_a_resubscription_moves_the_listening_start(visitor, queue, store_calls, clock):
    tracker = pubsub_tracker()
    clock.advance(tracker.skew + 1)
    visitor.join()
    clock.advance(1)
    tracker._go_live()  # a reconnect: what was published before it may be lost
    assert visitor.buy().status_code == 200
    assert len(store_calls) == 1


def test_while_unsubscribed_every_request_asks_the_store(admitted, queue, store_calls):
    tracker = pubsub_tracker()
    assert admitted.buy().status_code == 200
    tracker.stop()
    tracker.start = lambda: None  # stays down
    before = len(store_calls)
    assert admitted.buy().status_code == 200
    assert admitted.buy().status_code == 200
    assert len(store_calls) - before == 2
    get_store().release(queue.store_id, 1, services.clock())  # no message at all
    assert code_of(admitted.buy()) == (403, "pass_not_active")


def test_a_resubscription_forgets_the_confirmations(admitted, queue):
    tracker = pubsub_tracker()
    assert admitted.buy().status_code == 200
    assert tracker.confirmed
    generation = tracker.generation
    tracker._go_live()  # what a reconnect does when the subscription is confirmed again
    assert tracker.generation == generation + 1 and not tracker.confirmed


def test_the_subscriber_reconnects_after_its_connection_is_killed(admitted, queue):
    tracker = pubsub_tracker()
    generation = tracker.generation
    # Only this process's subscriber: other processes on this Redis (a demo, a Celery broker,
    # another test run) keep their connections.
    admin = redis.Redis.from_url(revocation.queue_settings.REDIS_URL, decode_responses=True)
    ours = [
        c["id"]
        for c in admin.client_list(_type="pubsub")
        if c["name"] == f"ticketqueue-passes-{os.getpid()}"
    ]
    assert len(ours) == 1
    assert admin.client_kill_filter(_id=ours[0]) == 1
    admin.close()
    wait_for(lambda: tracker.live and tracker.generation > generation)
    assert admitted.buy().status_code == 200


def test_fail_closed_when_the_store_is_unreachable(admitted, monkeypatch):
    def down(*args):
        raise redis.ConnectionError("down")

    monkeypatch.setattr(get_store(), "pass_active", down)
    revocation.reset_tracker()  # nothing confirmed: the gate must ask
    response = admitted.buy()
    assert code_of(response) == (503, "store_unreachable")
    assert response["Retry-After"] == "5"


def test_fail_open_when_configured(admitted, monkeypatch, settings):
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "STORE_FAILURE": "open"}

    def down(*args):
        raise redis.ConnectionError("down")

    monkeypatch.setattr(get_store(), "pass_active", down)
    assert admitted.buy().status_code == 200
    # Still strict about everything local.
    assert code_of(Visitor().buy(token=admitted.token)) == (403, "pass_wrong_identity")


def test_a_lost_queue_is_an_outage_not_an_ended_pass(admitted, queue):
    get_store().delete(queue.store_id)  # a Redis flush
    revocation.reset_tracker()
    assert code_of(admitted.buy()) == (503, "queue_unavailable")
    services.rebuild(queue)
    assert admitted.buy().status_code == 200


def test_concurrent_requests_and_a_release(admitted, queue):
    """Many threads buying while the pass is released: after release() returns, none pass."""
    if not isinstance(get_store(), MemoryStore):
        pubsub_tracker()
    admitted.buy()
    released = threading.Event()
    late_successes = []

    def buyer():
        client = Visitor()
        client.client.cookies["tq_visitor"] = admitted.visitor_cookie
        for _ in range(20):
            after = released.is_set()
            if client.buy(token=admitted.token).status_code == 200 and after:
                late_successes.append(1)

    threads = [threading.Thread(target=buyer) for _ in range(4)]
    for t in threads:
        t.start()
    services.release(admitted.token)
    released.set()
    for t in threads:
        t.join()
    assert late_successes == []


# -- DRF permission: where the queue comes from ---------------------------------------------


def test_queue_from_a_view_attribute(admitted):
    assert admitted.buy(path="/buy-fixed/").status_code == 200


def test_queue_from_the_object(admitted, queue, make_queue):
    other = make_queue("other")
    assert admitted.buy(path=f"/buy-object/{queue.pk}/").status_code == 200
    assert code_of(admitted.buy(path=f"/buy-object/{other.pk}/")) == (403, "pass_wrong_queue")


def test_object_check_picks_the_right_cookie(make_queue):
    make_queue("sale")
    other = make_queue("other")
    visitor = Visitor()
    visitor.join("sale")
    visitor.join("other")
    # Two pass cookies, no header: the object tells which one applies.
    response = visitor.client.get(f"/buy-object/{other.pk}/")
    assert response.status_code == 200 and response.json()["queue"] == other.store_id


def test_a_view_that_names_no_queue_is_a_configuration_error(admitted):
    with pytest.raises(ImproperlyConfigured):
        admitted.buy(path="/buy-unnamed/")
    with pytest.raises(ImproperlyConfigured):
        admitted.buy(path="/buy-no-queue-object/")


def test_unknown_queue(admitted):
    assert code_of(admitted.buy(path="/buy/nope/")) == (404, "queue_not_found")
    assert code_of(admitted.buy(path="/plain/nope/")) == (404, "queue_not_found")


def test_a_queue_callable_that_finds_none_never_means_any_queue(admitted):
    assert code_of(admitted.buy(path="/buy-none/")) == (404, "queue_not_found")
    assert code_of(admitted.buy(path="/plain-none/")) == (404, "queue_not_found")


# -- plain views ------------------------------------------------------------------------------


def test_decorator(admitted):
    assert admitted.buy(path="/plain/sale/").status_code == 200
    assert admitted.buy(path="/plain-fixed/").status_code == 200
    response = Visitor().client.get("/plain/sale/", HTTP_ACCEPT="application/json")
    assert code_of(response) == (429, "pass_missing")
    assert response["Retry-After"] == "5"


def test_async_decorator(admitted):
    assert admitted.buy(path="/async/sale/").status_code == 200
    assert code_of(Visitor().client.get("/async/sale/")) == (429, "pass_missing")


@pytest.fixture
def gated(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "ticketqueue.gate.QueuePassMiddleware"]
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "GATED_URLS": [(r"^/checkout/(?P<queue>[-\w]+)/", None)],
        "WAITING_URL": "/wait/{queue}/",
    }


def test_middleware_lets_the_holder_through(gated, admitted):
    assert admitted.buy(path="/checkout/sale/").status_code == 200
    assert Visitor().client.get("/open/").status_code == 200  # ungated paths untouched


def test_middleware_sends_browsers_to_the_waiting_page(gated, queue):
    response = Visitor().client.get("/checkout/sale/?seat=4", HTTP_ACCEPT="text/html,*/*")
    assert response.status_code == 302
    assert response["Location"] == "/wait/sale/?next=%2Fcheckout%2Fsale%2F%3Fseat%3D4"
    response = Visitor().client.post("/checkout/sale/", HTTP_ACCEPT="text/html")
    assert response.status_code == 303


def test_middleware_answers_json_clients_with_json(gated, admitted, clock):
    response = Visitor().client.get("/checkout/sale/", HTTP_ACCEPT="application/json")
    assert code_of(response) == (429, "pass_missing")
    assert response["Retry-After"] == "5"
    clock.advance(1000)
    response = admitted.buy(path="/checkout/sale/", HTTP_ACCEPT="application/json")
    assert code_of(response) == (403, "pass_expired")
    assert response["Retry-After"] == "5"


def test_middleware_with_a_fixed_queue(settings, admitted):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "ticketqueue.gate.QueuePassMiddleware"]
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "GATED_URLS": [(r"^/open/", "sale")]}
    assert admitted.buy(path="/open/").status_code == 200
    assert code_of(Visitor().client.get("/open/")) == (429, "pass_missing")
