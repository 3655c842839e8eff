"""The per-process fan-out on its own: coalescing, the position algebra, resyncs, lost
subscriptions. Time is an injected clock; frames are collected instead of sent."""

import asyncio
import json

import pytest

from ticketqueue import live, services
from ticketqueue.live import Seat, transport
from ticketqueue.live.hub import DRAW_RESYNC_WINDOW, get_hub

from .conftest import TIMEOUT, in_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


class Frames(list):
    """A seat's socket: keeps what the seat sends."""

    async def __call__(self, message):
        self.append(json.loads(message["text"]) if "text" in message else message)


def status(queue, **fields):
    values = {
        "queue": queue.slug,
        "queue_state": "open",
        "state": "waiting",
        "seq": 1,
        "position": 10,
        "waiting": 10,
        "active": 0,
        "eta_seconds": None,
        "order": 10.0,
    }
    values.update(fields)
    return services.Status(**values)


def tick(n=0, departed=(), waiting=0, active=0, rate=None, state="open"):
    return {
        "k": "tick",
        "n": n,
        "d": sorted(departed),
        "w": waiting,
        "a": active,
        "s": state,
        "r": rate,
    }


async def seat_in(queue, identity="anon:x", **status_fields):
    frames = Frames()
    seat = Seat(identity, frames)
    room = await get_hub().attach(queue, seat)
    room.apply_status(seat, status(queue, **status_fields), reply=True)
    return room, seat, frames


async def test_updates_are_coalesced_and_granted_is_not(make_queue, hub, clock, live_settings):
    live_settings.TICKETQUEUE = {**live_settings.TICKETQUEUE, "UPDATE_INTERVAL": 2.0}
    queue = await in_thread(make_queue)()
    get_hub().clock = clock
    room, seat, frames = await seat_in(queue, position=10)
    assert [f["position"] for f in frames] == [10]  # the answer to a read is never held back

    await room.on_message(tick(n=1, waiting=9))
    clock.advance(0.5)
    await room.on_message(tick(n=2, waiting=7))
    assert len(frames) == 1  # both within UPDATE_INTERVAL: held back
    clock.advance(1.5)
    room.flush()
    assert [f["position"] for f in frames] == [10, 7]  # one update, with the latest place

    clock.advance(0.1)
    await room.on_message({"k": "granted", "items": [["anon:x", 1, "the.pass", 1.0]]})
    assert frames[-1] == {"type": "granted", "pass": "the.pass", "expires_at": 1.0, "seq": 1}


async def test_nothing_new_sends_nothing(make_queue, hub):
    queue = await in_thread(make_queue)()
    room, seat, frames = await seat_in(queue, position=3, waiting=5)
    await room.on_message(tick(n=0, waiting=5))
    assert len(frames) == 1


async def test_the_position_algebra(make_queue, hub):
    queue = await in_thread(make_queue)()
    room, early, early_frames = await seat_in(queue, "anon:a", seq=5, order=5.0, position=5)
    late_frames = Frames()
    late = Seat("anon:b", late_frames)
    await get_hub().attach(queue, late)
    room.apply_status(late, status(queue, seq=10, order=10.0, position=9), reply=True)

    # Two admitted from the head; departures at orders 3 and 7 (and 12, behind both).
    await room.on_message(tick(n=2, departed=[12.0, 3.0, 7.0], waiting=4, rate=0.5))
    assert (early.position, late.position) == (5 - 2 - 1, 9 - 2 - 2)
    assert early_frames[-1]["eta_seconds"] == 4  # position 2 at half an admission a second
    assert (late_frames[-1]["position"], late_frames[-1]["waiting"]) == (5, 4)

    # A place never goes below 1 while waiting: an over-count waits for the next read.
    await room.on_message(tick(n=10))
    assert early.position == 1


async def test_a_resync_replaces_the_place_with_the_exact_one(
    make_queue, hub, clock, visitor, monkeypatch
):
    queue = await in_thread(make_queue)()
    people = [visitor() for _ in range(3)]
    for person in people:
        await in_thread(services.join)(queue, person.identity)
    get_hub().clock = clock
    exact = await in_thread(services.status)(queue, people[2].identity)
    room, seat, frames = await seat_in(
        queue, people[2].identity, seq=exact.seq, order=exact.order, position=3, waiting=3
    )
    seat.position = 1  # drifted, e.g. a departure counted twice
    assert await room.resync_due() == 0  # not due yet
    clock.advance(3600 * 2)
    assert await room.resync_due() == 1
    assert (seat.position, frames[-1]["position"]) == (3, 3)

    # The entry is admitted and the broadcasts are lost: the next read brings the pass.
    monkeypatch.setattr(transport, "publish", lambda *args: None)
    await in_thread(services.tick)(queue)
    clock.advance(3600 * 2)
    await room.resync_due()
    assert frames[-1]["type"] == "granted" and seat.state == "admitted"


async def test_the_prequeue_draw_makes_every_seat_read_its_place_soon(make_queue, hub, clock):
    queue = await in_thread(make_queue)()
    get_hub().clock = clock
    room, seat, frames = await seat_in(queue)
    await room.on_message({"k": "state", "state": "open", "previous": "scheduled"})
    assert seat.resync_at <= clock() + DRAW_RESYNC_WINDOW


@pytest.mark.parametrize("slow", [False, True])
async def test_a_slow_socket_holds_up_no_one(make_queue, hub, slow):
    """A send that must wait (full buffer) finishes in its own task; the fan-out goes on,
    and the slow socket later gets its frames in order, the newest update only."""
    queue = await in_thread(make_queue)()
    gate, granted = asyncio.Event(), asyncio.Event()
    stuck = []

    async def slow_send(message):
        if slow:
            await gate.wait()
        stuck.append(json.loads(message["text"]))
        if stuck[-1]["type"] == "granted":
            granted.set()

    seat = Seat("anon:slow", slow_send)
    room = await get_hub().attach(queue, seat)
    fast_room, fast, fast_frames = await seat_in(queue, "anon:fast", position=10)
    room.apply_status(seat, status(queue, position=20, seq=2, order=20.0), reply=True)
    await room.on_message(tick(n=1))
    await room.on_message(tick(n=1))
    await room.on_message({"k": "granted", "items": [["anon:slow", 2, "p", 1.0]]})
    assert [f["position"] for f in fast_frames] == [10, 9, 8]
    gate.set()
    await asyncio.wait_for(granted.wait(), TIMEOUT)
    expected = [20, 18] if slow else [20, 19, 18]
    assert [f.get("position") for f in stuck if f["type"] == "queue_update"] == expected
    assert stuck[-1]["type"] == "granted"


async def test_a_lost_subscription_is_made_again_and_the_seats_resync(
    make_queue, hub, visitor, live_settings
):
    if "memory" in live_settings.TICKETQUEUE["STORE"]:
        pytest.skip("a Redis subscription needs the Redis store")
    import redis

    queue = await in_thread(make_queue)()
    me = visitor()
    sock = await me.socket(queue).open()
    await sock.next()
    the_hub = get_hub()
    room = the_hub.rooms[queue.store_id]
    lost = asyncio.Event()
    resync_all = room.resync_all

    def spy():
        lost.set()
        resync_all()

    room.resync_all = spy
    client = redis.Redis.from_url(live_settings.TICKETQUEUE["REDIS_URL"])
    name = the_hub._subscriber.client_name
    (ours,) = [c for c in client.client_list() if c["name"] == name]
    client.client_kill_filter(_id=ours["id"])
    await asyncio.wait_for(lost.wait(), TIMEOUT)
    client.close()

    # Subscribed again: broadcasts arrive as before.
    await in_thread(services.join)(queue, me.identity)
    assert (await sock.next())["position"] == 1
    await sock.disconnect()
    await live.shutdown()


async def test_the_publisher_sends_the_passes_the_tick_signed(make_queue, hub, monkeypatch):
    """A tick hands its signed passes to entries_admitted: nothing is signed twice."""
    from ticketqueue import signals
    from ticketqueue.store import Admission

    queue = await in_thread(make_queue)()
    sent = []
    monkeypatch.setattr(transport, "publish", lambda queue_id, payload: sent.append(payload))
    monkeypatch.setattr(services, "issue_pass", lambda *args: pytest.fail("signed again"))
    admission = Admission(7, "anon:x", 1.0, 2.0, 1)
    signals.entries_admitted.send(
        sender=type(queue), queue=queue, admissions=[admission], passes={7: "signed.pass"}
    )
    assert json.loads(sent[0]) == {"k": "granted", "items": [["anon:x", 7, "signed.pass", 2.0]]}
