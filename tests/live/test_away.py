"""People away from the page: an admitted person whose every socket has been gone longer than
the queue's pass idle grace gives the slot back at the next tick; one still connected keeps it.

Presence comes from the sockets themselves (opened and closed here), and the slot goes back
through the tick a worker runs (``ticker.run_tick``)."""

import time

import pytest
from django.test import Client

from ticketqueue import services, ticker
from ticketqueue.models import Entry

from .conftest import heartbeat_heard, in_thread

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("socket_app"),
]


class Later:
    """services.clock running ``ahead`` seconds in front of the wall clock."""

    def __init__(self):
        self.ahead = 0.0

    def __call__(self):
        return time.time() + self.ahead


@pytest.fixture
def later(monkeypatch):
    from ticketqueue.live.connection import QueueSocket

    clock = Later()
    monkeypatch.setattr(services, "clock", clock)
    monkeypatch.setattr(QueueSocket, "clock", staticmethod(clock))
    return clock


def run_tick(queue):
    return ticker.run_tick(queues=[queue], batches=1, sleep=lambda s: None)


async def admitted_socket(queue, person):
    sock = await person.socket(queue).open()
    await sock.next()
    await sock.send(type="join")
    await sock.next()
    return sock


async def test_a_pass_whose_sockets_are_all_gone_past_the_grace_gives_its_slot_back(
    make_queue, hub, visitor, later
):
    queue = await in_thread(make_queue)(capacity=2, purchase_window=900, pass_idle_grace=90)
    gone, stays, rest_only, waiting = visitor(), visitor(), visitor(), visitor()
    gone_tabs = [await admitted_socket(queue, gone)]
    gone_tabs.append(await gone.socket(queue).open())  # a second tab
    await gone_tabs[1].next()
    stays_sock = await admitted_socket(queue, stays)
    await in_thread(run_tick)(queue)
    gone_pass = (await gone_tabs[0].next_of("granted"))["pass"]
    await stays_sock.next_of("granted")
    # Joined over REST while both slots are taken: waits behind them, holds no socket.
    await in_thread(services.join)(queue, rest_only.identity)
    await in_thread(services.join)(queue, waiting.identity)

    for tab in gone_tabs:
        await tab.disconnect()
    later.ahead = 80  # gone 80 s: inside the grace
    await heartbeat_heard(stays_sock, queue, stays.identity, later)  # `stays` keeps its page open
    report = await in_thread(run_tick)(queue)
    assert report.admitted == 0
    assert await in_thread(access)(gone_pass) == 200

    later.ahead = 91  # gone past the grace; `stays` is still connected (fresh presence)
    await in_thread(run_tick)(queue)
    assert await in_thread(state_of)(queue, gone) == "abandoned"
    assert await in_thread(access)(gone_pass) == 410  # the gate and other backends refuse it
    assert await in_thread(state_of)(queue, stays) == "admitted"
    # The freed slot went to the next in line, in the same tick.
    assert await in_thread(state_of)(queue, rest_only) == "admitted"

    # The REST-only holder never connected: gone since its admission (at 91 s), so past the
    # grace at 182 s.
    later.ahead = 175
    await heartbeat_heard(stays_sock, queue, stays.identity, later)
    await in_thread(run_tick)(queue)
    assert await in_thread(state_of)(queue, rest_only) == "admitted"
    later.ahead = 182
    await in_thread(run_tick)(queue)
    assert await in_thread(state_of)(queue, rest_only) == "abandoned"
    assert await in_thread(state_of)(queue, waiting) == "admitted"
    await stays_sock.disconnect()


def state_of(queue, person):
    return Entry.objects.get(queue=queue, identity=person.identity).state


def access(token):
    return Client().get("/queue/api/access/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code


async def test_without_a_grace_an_absent_holder_keeps_the_pass(make_queue, hub, visitor, later):
    queue = await in_thread(make_queue)(capacity=1)
    person = visitor()
    sock = await admitted_socket(queue, person)
    await in_thread(run_tick)(queue)
    await sock.next_of("granted")
    await sock.disconnect()
    later.ahead = 800
    await in_thread(run_tick)(queue)
    assert await in_thread(state_of)(queue, person) == "admitted"
