"""The purchase API: HasQueuePass in front, row-locked stock, one order per pass, release."""

import threading

import pytest
from django.db import connection

from demo_project.shop import sales
from demo_project.shop.models import Event, Order
from ticketqueue import services
from ticketqueue.core import PassLimitReached
from ticketqueue.models import Entry

from .conftest import pass_for

pytestmark = pytest.mark.django_db(transaction=True)


def buy(client, event, token=None, **body):
    headers = {"HTTP_X_QUEUE_PASS": token} if token else {}
    return client.post(f"/api/events/{event.slug}/purchase/", body, format="json", **headers)


@pytest.fixture(autouse=True)
def _demo_urls(settings):
    settings.ROOT_URLCONF = "demo_project.urls"


def test_a_pass_buys_one_order_and_is_released(make_event, buyer):
    event = make_event(stock=3)
    client = buyer()
    token = pass_for(event, client.identity)
    response = buy(client, event, token)
    assert response.status_code == 201, response.content
    assert response.json()["stock"] == 2
    order = Order.objects.get()
    assert (order.user, order.identity, order.quantity) == (client.user, client.identity, 1)
    event.refresh_from_db()
    assert event.stock == 2
    entry = Entry.objects.get(queue=event.queue, seq=order.queue_seq)
    assert entry.state == "completed"  # the slot was freed at once
    assert services.status(event.queue, client.identity).state is None


def test_the_same_pass_never_buys_twice(make_event, buyer):
    event = make_event(stock=5)
    client = buyer()
    token = pass_for(event, client.identity)
    first = buy(client, event, token)
    assert first.status_code == 201
    # A retry (the first answer was lost on the way) is answered with the same order.
    again = buy(client, event, token)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["stock"] == 4
    assert Order.objects.count() == 1
    # Someone else presenting that pass is still refused.
    other = buyer()
    refused = buy(other, event, token)
    assert (refused.status_code, refused.json()["code"]) == (403, "pass_wrong_identity")


def test_an_order_already_made_refuses_a_pass_reused_before_its_release(make_event, buyer):
    # The gate may still trust a pass for a moment after its release; the unique pass id
    # stops it at the database.
    event = make_event(stock=5)
    client = buyer()
    token = pass_for(event, client.identity)
    claims = _claims(event, token)
    sales.purchase(event, claims=claims, user=client.user)
    with pytest.raises(sales.PassAlreadyUsed):
        sales.purchase(event, claims=claims, user=client.user)
    assert Order.objects.count() == 1


def test_a_retry_the_gate_still_trusts_gets_the_same_order(make_event, buyer, monkeypatch):
    # Another process may not have heard of the release yet: its gate lets the retry in and
    # the order's unique pass id answers it, with the order already made.
    from ticketqueue import revocation

    event = make_event(stock=5)
    client = buyer()
    token = pass_for(event, client.identity)
    first = buy(client, event, token)
    assert first.status_code == 201
    monkeypatch.setattr(revocation, "check_active", lambda claims, now: None)
    again = buy(client, event, token)
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert Order.objects.count() == 1


def _claims(event, token):
    from ticketqueue import passes

    return passes.verify(token, queue_id=event.queue.store_id)


def test_no_pass_is_refused_with_a_stable_code(make_event, buyer):
    event = make_event()
    response = buy(buyer(), event)
    assert response.status_code == 429
    assert response.json()["code"] == "pass_missing"
    assert Order.objects.count() == 0


def test_a_pass_of_another_event_is_refused(make_event, buyer):
    first, second = make_event(), make_event()
    client = buyer()
    token = pass_for(first, client.identity)
    response = buy(client, second, token)
    assert response.status_code == 403
    assert response.json()["code"] == "pass_wrong_queue"


def test_someone_elses_pass_is_refused(make_event, buyer):
    event = make_event()
    holder, thief = buyer(), buyer()
    token = pass_for(event, holder.identity)
    response = buy(thief, event, token)
    assert response.status_code == 403
    assert response.json()["code"] == "pass_wrong_identity"


def test_anonymous_visitor_buys_with_its_visitor_id(make_event, visitor):
    event = make_event()
    client = visitor()
    token = pass_for(event, client.identity)
    response = buy(client, event, token)
    assert response.status_code == 201, response.content
    assert Order.objects.get().identity == client.identity


def test_quantity_is_bounded_per_order(make_event, buyer):
    event = make_event(stock=10, max_per_order=2)
    client = buyer()
    token = pass_for(event, client.identity)
    response = buy(client, event, token, quantity=3)
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_tickets"
    assert buy(client, event, token, quantity=2).status_code == 201
    event.refresh_from_db()
    assert event.stock == 8


def test_the_last_ticket_closes_the_queue_and_turns_the_line_away(make_event, buyer):
    event = make_event(stock=1, mode="auto", capacity=1)
    first = buyer()
    token = pass_for(event, first.identity)
    waiting = [buyer() for _ in range(3)]
    for client in waiting:
        assert services.join(event.queue, client.identity).state == "waiting"
    assert buy(first, event, token).status_code == 201
    event.queue.refresh_from_db()
    assert event.queue.state == "closed"
    states = set(Entry.objects.filter(queue=event.queue).values_list("state", flat=True))
    assert states == {"completed", "revoked"}


def test_a_pass_holder_after_the_sell_out_is_told_it_is_sold_out(make_event, buyer):
    event = make_event(stock=1, capacity=5)
    a, b = buyer(), buyer()
    token_a, token_b = pass_for(event, a.identity), pass_for(event, b.identity)
    assert buy(a, event, token_a).status_code == 201
    response = buy(b, event, token_b)
    assert response.status_code == 409
    assert response.json()["code"] == "sold_out"
    assert Order.objects.count() == 1


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row locks need PostgreSQL")
def test_concurrent_buyers_never_oversell(make_event, buyer):
    event = make_event(stock=5, capacity=50)
    clients = [buyer() for _ in range(20)]
    tokens = [pass_for(event, c.identity) for c in clients]
    assert all(tokens)
    results = []
    barrier = threading.Barrier(len(clients))

    def attempt(client, token):
        barrier.wait()
        try:
            results.append(buy(client, event, token).status_code)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=attempt, args=ct) for ct in zip(clients, tokens, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] * 5 + [409] * 15
    event = Event.objects.get(pk=event.pk)
    assert event.stock == 0
    assert Order.objects.filter(event=event).count() == 5
    assert len(set(Order.objects.values_list("pass_jti", flat=True))) == 5


@pytest.fixture
def database_dies_during_the_release(monkeypatch):
    """The database connection is killed (pg_terminate_backend, from a second connection)
    right after the order's commit, as the release starts writing its row."""
    if connection.vendor != "postgresql":
        pytest.skip("terminates a PostgreSQL backend")
    import psycopg

    real_sync = services._sync
    killed = []

    def sync_on_a_dead_connection(queue, changes):
        if not killed:
            pid = connection.connection.info.backend_pid
            params = connection.get_connection_params()
            with psycopg.connect(**params, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [pid])
            killed.append(pid)
        return real_sync(queue, changes)

    monkeypatch.setattr(services, "_sync", sync_on_a_dead_connection)
    return killed


def test_a_committed_purchase_is_done_though_the_database_dies_in_the_release(
    make_event, buyer, database_dies_during_the_release
):
    from ticketqueue import revocation

    event = make_event(stock=1)  # the last ticket: the sold-out close meets the dead connection
    client = buyer()
    token = pass_for(event, client.identity)
    ended = []
    monkeypatch_mark = revocation.get_tracker().mark_ended
    revocation.get_tracker().mark_ended = lambda items, publish=True: (
        ended.extend(items),
        monkeypatch_mark(items, publish),
    )
    try:
        response = buy(client, event, token)
    finally:
        revocation.get_tracker().mark_ended = monkeypatch_mark
        connection.close()  # what Django does with a broken connection when a request ends
    assert database_dies_during_the_release, "the connection was not killed"
    assert response.status_code == 201, response.content
    assert Order.objects.count() == 1
    # The pass ended in the store and was published as ended, though its row sync failed.
    claims = services.passes.verify(token)
    assert [jti for jti, _exp in ended] == [claims.jti]
    assert services.status(event.queue, client.identity).state is None
    # The row is written by whoever syncs the journal next (here: the next tick at the latest).
    services.tick(event.queue)
    assert Entry.objects.get(queue=event.queue, seq=claims.seq).state == "completed"


def test_the_demo_settings_answer_a_deep_body_400_and_log_every_500(
    make_event, buyer, settings, capsys, monkeypatch
):
    import logging.config

    from django.utils.log import configure_logging

    from demo_project import settings as demo_settings

    settings.REST_FRAMEWORK = demo_settings.REST_FRAMEWORK
    event = make_event(stock=3)
    client = buyer()
    token = pass_for(event, client.identity)
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post(
        f"/api/events/{event.slug}/purchase/",
        deep,
        content_type="application/json",
        HTTP_X_QUEUE_PASS=token,
    )
    assert (response.status_code, response.json()["code"]) == (400, "parse_error")
    assert Order.objects.count() == 0

    # With DEBUG off (as in production), a 500 still reaches the console with its traceback.
    logging.config.dictConfig(demo_settings.LOGGING)
    try:
        monkeypatch.setattr(sales, "purchase", lambda *a, **kw: 1 / 0)
        client.raise_request_exception = False
        response = buy(client, event, token)
        assert response.status_code == 500
        logged = capsys.readouterr().err
        assert "Internal Server Error: /api/events/" in logged
        assert "ZeroDivisionError" in logged
    finally:
        configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)


def test_the_demo_tells_the_queue_its_stock_as_it_sells(make_event, buyer):
    event = make_event(stock=3, capacity=1, mode="always")
    buyers = [buyer() for _ in range(4)]
    for client in buyers:
        services.join(event.queue, client.identity)
    # Three tickets for four people: the last one hears it will likely sell out first.
    assert [services.status(event.queue, c.identity).sold_out_likely for c in buyers] == [
        False,
        False,
        False,
        True,
    ]
    services.tick(event.queue)
    first = services.status(event.queue, buyers[0].identity)
    assert buy(buyers[0], event, first.pass_token).status_code == 201
    # Two left for three: still only the last.
    assert services.status(event.queue, buyers[3].identity).sold_out_likely is True
    assert services.status(event.queue, buyers[2].identity).sold_out_likely is False


def test_a_buyer_reloading_the_page_after_the_order_is_not_queued_again(make_event, buyer):
    event = make_event(stock=5)  # queues have one pass per person by default
    client = buyer()
    token = pass_for(event, client.identity)
    assert buy(client, event, token).status_code == 201
    with pytest.raises(PassLimitReached):
        services.join(event.queue, client.identity)  # what the event page's widget sends
    assert services.status(event.queue, client.identity).state is None
