"""Presence across processes, through its real producer and consumers: a socket server (daphne
in another process, on the shared Redis) records who is connected as sockets open and close;
the tick in this process tells only the people who are away, and the admin's reading agrees."""

import json
import time
from contextlib import ExitStack

import pytest
from websockets.sync.client import connect

from ticketqueue import services, ticker
from ticketqueue.identity import VISITOR_COOKIE
from ticketqueue.models import Entry, Queue
from ticketqueue.notifications import LocmemNotifier

from ..servers import request

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 30


def join_over_a_socket(sockets, base, queue):
    """A new visitor (its cookie from the waiting page) joins over a socket, left open."""
    status, cookie = request(base, "GET", f"/queue/{queue.slug}/wait/")
    assert status == 200 and cookie
    opening = connect(
        base.replace("http://", "ws://") + f"/ws/queue/{queue.slug}/",
        additional_headers={"Cookie": f"{VISITOR_COOKIE}={cookie}"},
        origin=base,
        open_timeout=TIMEOUT,
    )
    ws = sockets.enter_context(opening)
    ws.send(json.dumps({"type": "join"}))
    while json.loads(ws.recv(timeout=TIMEOUT)).get("state") != "waiting":
        pass
    return ws


def until(condition, what):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_tick_tells_only_whom_the_socket_server_saw_leave(asgi_server, settings):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "NOTIFIERS": ["ticketqueue.notifications.LocmemNotifier"],
    }
    queue = Queue.objects.create(slug="presence", name="Presence", mode="always", capacity=2)
    services.configure(queue)
    sockets = ExitStack()
    with sockets:
        check_presence_across(sockets, asgi_server, queue)


def check_presence_across(sockets, base, queue):
    leaving = join_over_a_socket(sockets, base, queue)
    staying = join_over_a_socket(sockets, base, queue)
    gone, here = (
        Entry.objects.filter(queue=queue).order_by("seq").values_list("identity", flat=True)
    )
    assert services.connected(queue, [gone, here]) == {gone, here}  # as the server recorded
    leaving.close()
    until(lambda: services.connected(queue, [gone, here]) == {here}, "the close to be recorded")
    LocmemNotifier.outbox.clear()

    report = ticker.run_tick(queues=[queue], batches=1)

    assert report.admitted == 2
    assert [r.identity for r in LocmemNotifier.outbox] == [gone]  # "here" sees it on the page
    staying.close()
    until(lambda: not services.connected(queue, [here]), "the last close to be recorded")
