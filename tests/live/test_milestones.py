"""Milestones heard over the socket: every open tab of a person who reached one hears it once,
at the tick that found it; people away hear it through the notifiers instead."""

import time

import pytest

from ticketqueue import services, ticker
from ticketqueue.notifications import LocmemNotifier

from .conftest import heartbeat_heard, in_thread

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("socket_app"),
]


@pytest.fixture
def locmem(live_settings):
    live_settings.TICKETQUEUE = {
        **live_settings.TICKETQUEUE,
        "NOTIFIERS": ["ticketqueue.notifications.LocmemNotifier"],
    }
    LocmemNotifier.outbox.clear()


def run_tick(queue):
    return ticker.run_tick(queues=[queue], batches=1, sleep=lambda s: None)


async def test_every_tab_hears_a_milestone_once(make_queue, hub, visitor, locmem):
    queue = await in_thread(make_queue)(capacity=1, notify_within=2)
    await in_thread(services.join)(queue, "user:first")  # takes the one pass
    await in_thread(run_tick)(queue)
    me, away = visitor(), visitor()
    tabs = [await me.socket(queue).open() for _ in range(2)]
    for tab in tabs:
        await tab.next()
    await tabs[0].send(type="join")
    for tab in tabs:
        assert (await tab.next_place())["state"] == "waiting"
    await in_thread(services.join)(queue, away.identity)
    await in_thread(run_tick)(queue)
    for tab in tabs:
        news = await tab.next_of("milestone")
        assert news == {"type": "milestone", "milestone": "near", "within": 2}
    near = [r.identity for r in LocmemNotifier.outbox if r.milestone == "near"]
    assert near == [away.identity]  # told by a notifier: no socket of theirs is open
    await in_thread(run_tick)(queue)
    await tabs[0].send(type="status")  # whatever comes next, no second milestone
    reply = await tabs[0].next()
    assert reply["type"] != "milestone"
    for tab in tabs:
        await tab.disconnect()


async def test_a_pass_holder_hears_when_the_pass_ends(
    make_queue, hub, visitor, locmem, monkeypatch
):
    queue = await in_thread(make_queue)(capacity=1, purchase_window=200, notify_pass_ending=120)
    me = visitor()
    sock = await me.socket(queue).open()
    await sock.next()
    await sock.send(type="join")
    assert (await sock.next())["state"] == "waiting"
    await in_thread(run_tick)(queue)
    granted = await sock.next_of("granted")
    from ticketqueue.live.connection import QueueSocket

    def later():
        return time.time() + 90

    monkeypatch.setattr(services, "clock", later)
    monkeypatch.setattr(QueueSocket, "clock", staticmethod(later))
    await heartbeat_heard(sock, queue, me.identity, later)  # the page is still open
    await in_thread(run_tick)(queue)
    news = await sock.next_of("milestone")
    assert news == {
        "type": "milestone",
        "milestone": "ending",
        "expires_at": pytest.approx(granted["expires_at"]),
    }
    assert [r.milestone for r in LocmemNotifier.outbox] == []  # present: no notifier
    await sock.disconnect()
