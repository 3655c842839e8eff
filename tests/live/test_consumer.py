"""The queue socket against the real store and database: joining, positions moved by ticks,
one entry shared by several sockets, grace on disconnect, the truth on reconnect, closing."""

import asyncio
import threading
import time

import pytest

from ticketqueue import live, passes, presence, services
from ticketqueue.conf import queue_settings
from ticketqueue.live.protocol import (
    CLOSE_IDENTITY_REQUIRED,
    CLOSE_QUEUE_CLOSED,
    CLOSE_QUEUE_NOT_FOUND,
)
from ticketqueue.models import Entry
from ticketqueue.store import reset_store

from .conftest import TIMEOUT, heartbeats_written, in_thread

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("socket_app"),  # the Channels consumer and the lean application
]


@pytest.fixture(params=["store", "local"])
def broadcast(request, live_settings):
    """Every flow runs over the store's broadcast (Redis pub/sub with the Redis store) and over
    the in-process bus of the embedded default."""
    if request.param == "store" and "memory" in live_settings.TICKETQUEUE["STORE"]:
        pytest.skip("the store's broadcast is the in-process bus with the memory store")
    live_settings.TICKETQUEUE = {**live_settings.TICKETQUEUE, "LIVE_BROADCAST": request.param}
    reset_store()  # a RedisStore announces joins itself exactly when the broadcast is Redis
    return request.param


async def join_ahead(queue, visitor, n):
    people = [visitor() for _ in range(n)]
    for person in people:
        await in_thread(services.join)(queue, person.identity)
    return people


async def join_over_sockets(queue, people):
    """Each person opens a socket and joins over it, in order; their sockets, waiting."""
    sockets = []
    for person in people:
        sock = await person.socket(queue).open()
        await sock.next()
        await sock.send(type="join")
        assert (await sock.next())["state"] == "waiting"
        sockets.append(sock)
    return sockets


async def tick(queue, **kwargs):
    return await in_thread(services.tick)(queue, **kwargs)


async def test_a_socket_without_identity_is_told_to_get_one(make_queue, hub):
    from .conftest import Socket

    queue = await in_thread(make_queue)()
    sock = await Socket(queue.slug, [(b"origin", b"http://testserver")]).open()
    error = await sock.next()
    assert error["type"] == "error" and error["code"] == "identity_required"
    closed = await sock.receive_output(timeout=TIMEOUT)
    assert (closed["type"], closed["code"]) == ("websocket.close", CLOSE_IDENTITY_REQUIRED)


async def test_an_unknown_queue_is_refused_with_its_code(hub, visitor, live_settings):
    from .conftest import Socket

    v = visitor()
    sock = Socket(
        "no-such-queue",
        [(b"cookie", f"tq_visitor={v.cookie}".encode()), (b"origin", b"http://testserver")],
    )
    await sock.open()
    assert (await sock.next())["code"] == "queue_not_found"
    assert (await sock.receive_output(timeout=TIMEOUT))["code"] == CLOSE_QUEUE_NOT_FOUND


async def test_a_foreign_origin_is_rejected(make_queue, hub, visitor):
    queue = await in_thread(make_queue)()
    sock = visitor().socket(queue, origin=b"https://evil.example")
    connected, _ = await sock.connect(timeout=TIMEOUT)
    assert not connected


async def test_join_position_and_ticks_moving_it(make_queue, hub, visitor, broadcast):
    queue = await in_thread(make_queue)()
    ahead = await join_ahead(queue, visitor, 3)
    me = visitor()
    sock = await me.socket(queue).open()
    hello = await sock.next()
    assert (hello["type"], hello["state"], hello["position"], hello["waiting"]) == (
        "queue_update",
        None,
        None,
        3,
    )

    await sock.send(type="join")
    joined = await sock.next()
    assert (joined["state"], joined["position"], joined["waiting"]) == ("waiting", 4, 4)

    await tick(queue, limit=2)  # the first two are admitted
    update = await sock.next()
    assert (update["state"], update["position"], update["waiting"], update["active"]) == (
        "waiting",
        2,
        2,
        2,
    )

    # Someone ahead leaves: the next tick carries that departure and the place moves again.
    await in_thread(services.leave)(queue, ahead[2].identity)
    await tick(queue, limit=0)
    update = await sock.next()
    assert (update["position"], update["waiting"]) == (1, 1)
    assert update["position"] == (await in_thread(services.status)(queue, me.identity)).position
    await sock.disconnect()


async def test_departures_behind_do_not_move_a_place(make_queue, hub, visitor, broadcast):
    queue = await in_thread(make_queue)()
    await join_ahead(queue, visitor, 1)
    me = visitor()
    sock = await me.socket(queue).open()
    await sock.next()
    await sock.send(type="join")
    assert (await sock.next())["position"] == 2
    behind = await join_ahead(queue, visitor, 2)
    await in_thread(services.leave)(queue, behind[0].identity)
    await tick(queue, limit=0)
    update = await sock.next()
    assert (update["position"], update["waiting"]) == (2, 3)
    await sock.disconnect()


async def test_every_socket_of_one_identity_shares_the_entry(make_queue, hub, visitor, broadcast):
    queue = await in_thread(make_queue)(purchase_window=600)
    await join_ahead(queue, visitor, 1)
    me = visitor()
    phone, laptop = await me.socket(queue).open(), await me.socket(queue).open()
    await phone.next(), await laptop.next()

    await laptop.send(type="join")
    on_laptop, on_phone = await laptop.next(), await phone.next()
    assert on_laptop["position"] == on_phone["position"] == 2
    # The same entry, not two.
    assert await in_thread(Entry.objects.filter(queue=queue, identity=me.identity).count)() == 1

    await tick(queue, limit=2)
    granted = [await phone.next_of("granted"), await laptop.next_of("granted")]
    assert granted[0]["pass"] == granted[1]["pass"]
    claims = passes.verify(granted[0]["pass"], queue_id=queue.store_id)
    assert claims.identity == me.identity and granted[0]["seq"] == claims.seq
    assert granted[0]["expires_at"] == pytest.approx(claims.expires_at, abs=1)

    await phone.disconnect(), await laptop.disconnect()


async def test_a_join_elsewhere_reaches_the_identity_sockets(make_queue, hub, visitor, broadcast):
    queue = await in_thread(make_queue)()
    me = visitor()
    sock = await me.socket(queue).open()
    assert (await sock.next())["state"] is None
    await in_thread(services.join)(queue, me.identity)  # e.g. the REST join from another tab
    update = await sock.next()
    assert (update["state"], update["position"]) == ("waiting", 1)
    await sock.disconnect()


async def test_leaving_tells_every_socket_of_the_identity(make_queue, hub, visitor, broadcast):
    queue = await in_thread(make_queue)()
    me = visitor()
    one, two = await me.socket(queue).open(), await me.socket(queue).open()
    await one.next(), await two.next()
    await one.send(type="join")
    await one.next(), await two.next()
    await one.send(type="leave")
    assert await one.next() == {"type": "left", "reason": "left"}
    assert await two.next() == {"type": "left", "reason": "left"}
    assert (await in_thread(services.status)(queue, me.identity)).state is None
    await one.disconnect(), await two.disconnect()


async def test_a_leave_is_answered_while_a_burst_holds_the_thread_pool(make_queue, hub, visitor):
    """In a burst the pool holds thousands of joins and reads; whoever gives up a place hears
    so at once, not after them."""
    queue = await in_thread(make_queue)()
    me = visitor()
    sock = await me.socket(queue).open()
    await sock.next()
    await sock.send(type="join")
    await sock.next()
    release = threading.Event()
    loop = asyncio.get_running_loop()
    busy = [loop.run_in_executor(None, release.wait) for _ in range(64)]  # every thread, queued
    # Let them go after a while whatever happens: a leave queued behind them would then be
    # answered late (and fail below) rather than never.
    loop.call_later(TIMEOUT / 2, release.set)
    try:
        await sock.send(type="leave")
        assert await sock.next() == {"type": "left", "reason": "left"}
        assert not release.is_set(), "the leave waited for the pool"
    finally:
        release.set()
        await asyncio.gather(*busy)
    assert (await in_thread(services.status)(queue, me.identity)).state is None
    await sock.disconnect()


async def test_a_disconnect_within_the_grace_keeps_the_place(make_queue, hub, visitor, broadcast):
    queue = await in_thread(make_queue)(disconnect_grace=600)
    await join_ahead(queue, visitor, 2)
    me, gone_too_long = visitor(), visitor()
    sock = await me.socket(queue).open()
    await sock.next()
    await sock.send(type="join")
    assert (await sock.next())["position"] == 3
    await sock.disconnect()

    await tick(queue, limit=1)  # the line moves while the visitor is away
    # Within the grace: nobody is abandoned.
    assert await in_thread(services.abandon_unseen)(queue, time.time() + 300) == []

    sock = await me.socket(queue).open()
    back = await sock.next()
    assert (back["state"], back["position"]) == ("waiting", 2)

    # For contrast: an entry unseen for longer than the grace loses its place, and its
    # sockets hear why.
    await in_thread(services.join)(queue, gone_too_long.identity)
    other = await gone_too_long.socket(queue).open()
    await other.next()
    abandoned = await in_thread(services.abandon_unseen)(queue, time.time() + 900)
    assert gone_too_long.identity in {c.identity for c in abandoned}
    assert await other.next_of("left") == {"type": "left", "reason": "abandoned"}
    await sock.disconnect(), await other.disconnect()


async def test_a_socket_closed_after_shutdown_records_the_disconnect_and_makes_no_hub(
    make_queue, hub, visitor
):
    """A server stopping closes its hub first; the sockets still open close after it. Their
    disconnect is recorded, and no new hub (a subscriber, a task) is started to seat nobody."""
    queue = await in_thread(make_queue)(disconnect_grace=600)
    me = visitor()
    sock = await me.socket(queue).open()
    await sock.next()
    await sock.send(type="join")
    assert (await sock.next_place())["state"] == "waiting"
    assert await in_thread(presence.is_connected)(queue.store_id, me.identity)
    await live.shutdown()

    await sock.disconnect()
    hub_tasks = [t for t in asyncio.all_tasks() if "Hub._work" in repr(t.get_coro())]
    assert hub_tasks == []
    assert not await in_thread(presence.is_connected)(queue.store_id, me.identity)


async def test_a_missed_granted_is_recovered_on_reconnect(make_queue, hub, visitor, broadcast):
    queue = await in_thread(make_queue)(purchase_window=600)
    me = visitor()
    await in_thread(services.join)(queue, me.identity)
    sock = await me.socket(queue).open()
    assert (await sock.next())["position"] == 1
    await sock.disconnect()

    await tick(queue)  # admitted while no socket was open: nobody heard 'granted'

    sock = await me.socket(queue).open()
    granted = await sock.next()
    assert granted["type"] == "granted"
    assert passes.verify(granted["pass"], queue_id=queue.store_id).identity == me.identity
    await sock.disconnect()


async def test_the_status_message_answers_with_the_truth(make_queue, hub, visitor, broadcast):
    queue = await in_thread(make_queue)()
    me = visitor()
    await in_thread(services.join)(queue, me.identity)
    sock = await me.socket(queue).open()
    first = await sock.next()
    await sock.send(type="status")
    assert await sock.next() == first  # asked again: answered again, even if unchanged
    await sock.disconnect()


async def test_closing_tells_everyone(make_queue, hub, visitor, broadcast):
    queue = await in_thread(make_queue)(capacity=1, purchase_window=600)
    holder, waiter, onlooker = visitor(), visitor(), visitor()
    await in_thread(services.join)(queue, holder.identity)
    await tick(queue)
    await in_thread(services.join)(queue, waiter.identity)
    socks = [await v.socket(queue).open() for v in (holder, waiter, onlooker)]
    assert (await socks[0].next())["type"] == "granted"
    assert (await socks[1].next())["state"] == "waiting"
    assert (await socks[2].next())["state"] is None

    await in_thread(services.close)(queue)

    # The waiting entry was revoked, everyone hears 'closed'; sockets without a pass close.
    assert await socks[1].next() == {"type": "revoked", "reason": "closed"}
    for sock in socks:
        assert await sock.next() == {"type": "closed", "queue_state": "closed"}
    for sock in socks[1:]:
        assert (await sock.receive_output(timeout=TIMEOUT))["code"] == CLOSE_QUEUE_CLOSED
    # The pass holder keeps the socket (its pass stays valid until it expires).
    await socks[0].send(type="status")
    assert (await socks[0].next())["type"] == "granted"
    await socks[0].disconnect()

    # A socket opening on a closed queue hears it at once.
    late = await visitor().socket(queue).open()
    assert (await late.next_of("closed"))["type"] == "closed"
    assert (await late.receive_output(timeout=TIMEOUT))["code"] == CLOSE_QUEUE_CLOSED


async def test_expired_released_and_operator_revoked_passes_are_told(
    make_queue, hub, visitor, broadcast, monkeypatch
):
    queue = await in_thread(make_queue)(purchase_window=60)
    a, b, c = visitor(), visitor(), visitor()
    socks = []
    for v in (a, b, c):
        await in_thread(services.join)(queue, v.identity)
    await tick(queue)
    for v in (a, b, c):
        sock = await v.socket(queue).open()
        assert (await sock.next())["type"] == "granted"
        socks.append(sock)

    status = await in_thread(services.status)(queue, b.identity)
    await in_thread(services.release)(status.pass_token)
    assert await socks[1].next() == {"type": "revoked", "reason": "released"}

    await in_thread(services.revoke)(queue, [status.seq + 1], "operator")
    assert await socks[2].next() == {"type": "revoked", "reason": "operator"}

    await tick(queue, now=time.time() + 120)
    assert await socks[0].next_of("revoked") == {"type": "revoked", "reason": "expired"}
    for sock in socks:
        await sock.disconnect()


async def test_heartbeats_keep_an_entry_present(make_queue, hub, visitor, clock, monkeypatch):
    from ticketqueue.live.connection import QueueSocket

    monkeypatch.setattr(services, "clock", clock)  # the store's "seen" times
    ticks = type(clock)(0.0)
    monkeypatch.setattr(QueueSocket, "clock", staticmethod(ticks))  # the heartbeat throttle
    queue = await in_thread(make_queue)(disconnect_grace=600)
    present, away = visitor(), visitor()
    for v in (present, away):
        await in_thread(services.join)(queue, v.identity)
    sock = await present.socket(queue).open()
    await sock.next()

    clock.advance(590)
    ticks.advance(30)  # more than HEARTBEAT_INTERVAL / 2 since the last mark
    await sock.send(type="heartbeat")
    await sock.send(type="status")  # answered after the heartbeat is handled
    await sock.next()
    await heartbeats_written(queue)

    abandoned = await in_thread(services.abandon_unseen)(queue, clock.now + 20)
    assert [c.identity for c in abandoned] == [away.identity]
    await sock.disconnect()


async def test_refusals_carry_their_codes(make_queue, hub, visitor):
    queue = await in_thread(make_queue)(max_size=1)
    await in_thread(services.join)(queue, visitor().identity)
    me = visitor()
    sock = await me.socket(queue).open()
    await sock.next()
    await sock.send(type="leave")
    assert (await sock.next())["code"] == "entry_not_found"
    await sock.send(type="join")
    assert (await sock.next())["code"] == "queue_full"
    await sock.disconnect()


def _logged_in_session():
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_user(f"fan{time.monotonic_ns()}")
    client = Client()
    client.force_login(user)
    return user, client.cookies["sessionid"].value


async def test_a_logged_in_user_is_the_socket_identity(make_queue, hub, visitor):
    from .conftest import Socket

    queue = await in_thread(make_queue)()
    user, session = await in_thread(_logged_in_session)()
    me = visitor()  # a visitor cookie too: the login wins, as over REST
    headers = [
        (b"cookie", f"sessionid={session}; tq_visitor={me.cookie}".encode()),
        (b"origin", b"http://testserver"),
    ]
    sock = await Socket(queue.slug, headers).open()
    await sock.next()
    await sock.send(type="join")
    assert (await sock.next())["state"] == "waiting"
    assert (await in_thread(services.status)(queue, f"user:{user.pk}")).state == "waiting"
    assert (await in_thread(services.status)(queue, me.identity)).state is None
    await sock.disconnect()

    # A session that is not (or no longer) a login leaves the visitor cookie to decide.
    headers[0] = (b"cookie", f"sessionid=not-a-session; tq_visitor={me.cookie}".encode())
    sock = await Socket(queue.slug, headers).open()
    await sock.next()
    await sock.send(type="join")
    await sock.next()
    assert (await in_thread(services.status)(queue, me.identity)).state == "waiting"
    await sock.disconnect()


async def test_an_open_socket_makes_its_identity_present_until_it_closes(
    make_queue, hub, visitor, broadcast
):
    from ticketqueue import notifications

    queue = await in_thread(make_queue)(capacity=5)
    watching, two_tabs, away = visitor(), visitor(), visitor()
    sock = await watching.socket(queue).open()
    await sock.next()
    await sock.send(type="join")
    assert (await sock.next())["position"] == 1
    tabs = [await two_tabs.socket(queue).open() for _ in range(2)]
    for tab in tabs:
        await tab.next()
    await tabs[0].send(type="join")
    assert (await tabs[0].next())["position"] == 2
    await in_thread(services.join)(queue, away.identity)  # joined over REST, no socket

    admitted = (await tick(queue)).admitted
    assert len(admitted) == 3
    # Only the one with no open socket is told by a notifier.
    targets = await in_thread(notifications.absent)(queue, admitted)
    assert [identity for _seq, identity, _expires in targets] == [away.identity]

    await tabs[0].disconnect()  # the other tab is still open
    assert await in_thread(presence.is_connected)(queue.store_id, two_tabs.identity)
    await tabs[1].disconnect(), await sock.disconnect()
    gone = await in_thread(presence.connected)(
        queue.store_id, [watching.identity, two_tabs.identity]
    )
    assert gone == set()


async def test_a_heartbeat_from_an_admitted_socket_is_no_error(
    make_queue, hub, visitor, broadcast, monkeypatch, live_settings
):
    from ticketqueue import presence
    from ticketqueue.live.connection import QueueSocket

    clock = [1000.0]
    monkeypatch.setattr(QueueSocket, "clock", staticmethod(lambda: clock[0]))
    queue = await in_thread(make_queue)(capacity=1)
    me = visitor()
    sock = await me.socket(queue).open()
    await sock.next()
    await sock.send(type="join")
    assert (await sock.next())["state"] == "waiting"
    await tick(queue)
    assert (await sock.next())["type"] == "granted"
    # The heartbeat of an admitted socket keeps it present (for the notifier), and is no
    # "entry not found": 100 s later by the services' clock, it refreshes the presence.
    monkeypatch.setattr(services, "clock", lambda: time.time() + 100)
    clock[0] += 3600
    await sock.send(type="heartbeat")
    await sock.send(type="status")
    reply = await sock.next()
    assert reply["type"] != "error", reply
    await heartbeats_written(queue)
    later = time.time() + 100 + queue_settings.PRESENCE_TIMEOUT - 5
    assert await in_thread(presence.is_connected)(queue.store_id, me.identity, later)
    await sock.disconnect()


async def test_after_the_draw_every_socket_first_hears_its_drawn_place(
    make_queue, hub, visitor, broadcast, monkeypatch
):
    from datetime import UTC, datetime, timedelta

    from ticketqueue.live import hub as hub_module

    monkeypatch.setattr(hub_module, "DRAW_RESYNC_WINDOW", 0.5)  # the reads come sooner
    opens_at = datetime.now(UTC) + timedelta(hours=1)
    queue = await in_thread(make_queue)(state="scheduled", opens_at=opens_at, capacity=3)
    people = [visitor() for _ in range(8)]
    sockets = await join_over_sockets(queue, people)

    # The opening tick draws the pre-queue and admits the first three of the drawn line.
    queue.opens_at = datetime.now(UTC) - timedelta(seconds=1)
    await in_thread(queue.save)(update_fields=["opens_at"])
    await tick(queue)
    for person, sock in zip(people, sockets, strict=True):
        truth = await in_thread(services.status)(queue, person.identity)
        places = []  # every place this socket is shown after the draw, in order
        while True:
            message = await sock.next()
            if message["type"] == "granted":
                assert truth.state == "admitted"
                break
            if message["type"] == "queue_update" and message["queue_state"] == "open":
                places.append(message["position"])
                if message["position"] is not None:
                    break
        if truth.state == "waiting":
            # The first place shown after the draw is the drawn one (no pre-draw place moved
            # by the opening admissions, which a socket would later lose).
            assert places[-1] == truth.position, (places, truth.position)
            assert all(place is None for place in places[:-1]), places
    for sock in sockets:
        await sock.disconnect()


async def test_a_socket_far_behind_hears_the_tickets_will_likely_run_out(
    make_queue, hub, visitor, broadcast
):
    queue = await in_thread(make_queue)(capacity=1)
    sockets = await join_over_sockets(queue, [visitor() for _ in range(3)])
    await in_thread(services.set_stock)(queue, 2)  # one for the first pass holder, one more
    await tick(queue)  # the first is admitted; the broadcast carries the stock
    assert (await sockets[0].next_of("granted"))["type"] == "granted"
    second = await sockets[1].next_of("queue_update")
    third = await sockets[2].next_of("queue_update")
    assert (second["position"], second.get("sold_out_likely", False)) == (1, False)
    assert (third["position"], third["sold_out_likely"]) == (2, True)
    for sock in sockets:
        await sock.disconnect()
