"""What is left to sell: the stock counted by release or asked of the site each tick, the line
told when tickets will likely run out, and the queue closing by itself at zero (real store and
database)."""

import threading

import pytest
from django.db import connection
from django.test import Client

import ticketqueue
from ticketqueue import apikeys, passes, services, ticker
from ticketqueue.core import PassNotActive
from ticketqueue.models import Entry, OperatorAction, OperatorKey, Queue
from ticketqueue.store import get_store

from .conftest import T0

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr(services, "clock", lambda: T0)
    monkeypatch.setattr(passes, "timer", lambda: T0)


def line(queue, n, capacity_admits=True):
    for i in range(n):
        services.join(queue, f"user:{i}")
    return services.tick(queue).admitted if capacity_admits else []


def pass_of(queue, seq):
    entry = Entry.objects.get(queue=queue, seq=seq)
    return services.issue_pass(queue, seq, entry.identity, T0, T0 + queue.purchase_window)


def audit(queue):
    return list(
        OperatorAction.objects.filter(queue=queue)
        .order_by("pk")
        .values_list("username", "action", "count")
    )


def test_release_takes_the_orders_tickets_and_closes_the_line_at_zero(make_queue):
    queue = make_queue(mode="always", capacity=2, stock=5)
    admitted = line(queue, 6)  # two holders, four waiting
    first, second = (pass_of(queue, a.seq) for a in admitted)
    # Five tickets: two for the holders, three for positions 1-3; position 4 is told.
    assert [services.status(queue, f"user:{i}").sold_out_likely for i in range(2, 6)] == [
        False,
        False,
        False,
        True,
    ]

    ticketqueue.release(first, tickets=2)
    queue.refresh_from_db()
    assert queue.stock == 3 and queue.state == "open"
    # Three left: one for the holder, two for positions 1-2; position 3 is told now.
    assert services.status(queue, "user:4").sold_out_likely is True
    assert services.status(queue, "user:3").sold_out_likely is False
    # Released already: nothing changes, the stock included.
    with pytest.raises(PassNotActive):
        ticketqueue.release(first, tickets=2)
    assert Queue.objects.get(pk=queue.pk).stock == 3

    ticketqueue.release(second, tickets=3)
    queue.refresh_from_db()
    assert (queue.stock, queue.state) == (0, "closed")
    assert Entry.objects.filter(queue=queue, state="waiting").count() == 0
    assert services.status(queue, "user:5").queue_state == "closed"
    # The first release let position 1 in at once; the last one sold out: nobody more.
    assert Entry.objects.get(queue=queue, identity="user:2").state == "admitted"
    assert Entry.objects.get(queue=queue, identity="user:3").state == "revoked"
    assert audit(queue) == [("ticketqueue: sold out", "close", 3)]


def test_a_queue_without_stock_counts_nothing(make_queue):
    queue = make_queue(mode="always", capacity=1)
    [admitted] = line(queue, 2)
    ticketqueue.release(pass_of(queue, admitted.seq), tickets=3)
    queue.refresh_from_db()
    assert (queue.stock, queue.state) == (None, "open")


def test_a_buyers_own_release_over_rest_takes_no_stock(make_queue):
    """Only the site knows an order completed: a buyer ending their pass sells nothing."""
    queue = make_queue(mode="auto", capacity=5, stock=3)
    client = Client()
    joined = client.post("/queue/api/queues/sale/join/").json()
    released = client.post("/queue/api/queues/sale/release/", {"pass": joined["pass"]})
    assert released.status_code == 200
    assert Queue.objects.get(pk=queue.pk).stock == 3


def test_set_stock_is_recorded_mirrored_and_closes_at_zero(make_queue):
    queue = make_queue(mode="always", capacity=1)
    line(queue, 4)  # one holder, three waiting
    ticketqueue.set_stock(queue, 2)
    assert Queue.objects.get(pk=queue.pk).stock == 2
    assert services.status(queue, "user:2").sold_out_likely is True  # 1 holder + 1 ahead
    ticketqueue.set_stock(queue, -4)  # an oversold count is nothing left
    queue.refresh_from_db()
    assert (queue.stock, queue.state) == (0, "closed")


def test_the_stock_outlives_a_lost_store(make_queue):
    queue = make_queue(mode="always", capacity=1, stock=2)
    line(queue, 4)
    store = get_store()
    store.delete(queue.store_id)  # the store lost the queue (a flush, a failover)
    assert not store.is_loaded(queue.store_id)
    status = services.status(queue, "user:3")  # rebuilt from the rows on first use
    assert status.position == 3 and status.sold_out_likely is True
    assert status.stock == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_take_the_stock_exactly_and_close_once(make_queue):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; this test is for the production database")
    buyers = 12
    queue = make_queue(mode="always", capacity=buyers, stock=buyers * 2)
    admitted = line(queue, buyers + 5)
    tokens = [pass_of(queue, a.seq) for a in admitted]
    errors = []
    start = threading.Barrier(buyers)

    def buy(token):
        try:
            start.wait()
            ticketqueue.release(token, tickets=2)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=buy, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    queue.refresh_from_db()
    assert (queue.stock, queue.state) == (0, "closed")
    # The five who waited were let in by a release before the stock ran out, or turned away
    # by the one close.
    [(who, action, turned_away)] = audit(queue)
    services.sync_journal(queue)
    waited = Entry.objects.filter(queue=queue, seq__gt=buyers)
    let_in = waited.filter(admitted_at__isnull=False).count()
    assert (who, action, turned_away + let_in) == ("ticketqueue: sold out", "close", 5)


def tickets_left(queue):
    return RESOLVED[queue.slug]


RESOLVED = {}


def test_the_tick_asks_the_sites_resolver_and_closes_before_admitting(make_queue, settings):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "STOCK_RESOLVER": "tests.engine.test_inventory.tickets_left",
    }
    queue = make_queue(mode="always", capacity=1)
    for i in range(5):
        services.join(queue, f"user:{i}")
    RESOLVED["sale"] = 1
    report = ticker.run_tick(queues=[queue], batches=1, interval=0.01)
    queue.refresh_from_db()
    assert queue.stock == 1 and report.ticked[0].admitted == 1
    assert services.status(queue, "user:3").sold_out_likely is True

    RESOLVED["sale"] = 0  # the site sold the last one elsewhere
    report = ticker.run_tick(queues=[queue], batches=1, interval=0.01)
    queue.refresh_from_db()
    assert (queue.stock, queue.state) == (0, "closed")
    assert report.ticked[0].admitted == 0
    assert audit(queue) == [("ticketqueue: sold out", "close", 4)]


def failing_resolver(queue):
    raise RuntimeError("inventory service down")


def test_a_failing_resolver_does_not_stop_the_tick(make_queue, settings, caplog):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "STOCK_RESOLVER": "tests.engine.test_inventory.failing_resolver",
    }
    queue = make_queue(mode="always", capacity=10)
    services.join(queue, "user:1")
    report = ticker.run_tick(queues=[queue], batches=1, interval=0.01)
    assert report.ticked[0].admitted == 1
    assert "STOCK_RESOLVER failed" in caplog.text


def test_an_operator_setting_the_stock_to_zero_sells_out(make_queue):
    queue = make_queue(mode="always", capacity=1, stock=10)
    line(queue, 3)
    _row, key = apikeys.issue("shop", access=OperatorKey.Access.OPERATE)
    response = Client().patch(
        "/queue/api/operator/queues/sale/",
        data='{"stock": 0}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 200, response.content
    queue.refresh_from_db()
    assert queue.state == "closed"
    rows = OperatorAction.objects.filter(queue=queue).order_by("pk")
    assert [(r.username, r.action, r.after.get("stock"), r.after.get("state")) for r in rows] == [
        ("key:shop", "edit", 0, None),
        ("ticketqueue: sold out", "close", 0, "closed"),
    ]
