"""The per-process fan-out on its own: coalescing, the position algebra, resyncs, lost
subscriptions. Time is an injected clock; frames are collected instead of sent."""

import asyncio
import json

import pytest

from ticketqueue import live, services
from ticketqueue.live import Seat, publisher, transport
from ticketqueue.live.hub import DRAW_RESYNC_WINDOW, get_hub, run_eagerly
from ticketqueue.models import Queue
from ticketqueue.store import get_store

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


def tick(n=0, departed=(), waiting=0, active=0, rate=None, state="open", total=None, dt=None):
    """A tick broadcast; with ``dt`` (the departed total) the departures are numbered and in
    the order they left, without it they are an older publisher's: sorted, unnumbered."""
    message = {
        "k": "tick",
        "n": n,
        "d": list(departed) if dt is not None else sorted(departed),
        "w": waiting,
        "a": active,
        "s": state,
        "r": rate,
    }
    if total is not None:
        message["t"] = total
    if dt is not None:
        message["dt"] = dt
    return message


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


async def test_a_redis_store_announces_a_join_exactly_as_the_publisher_would(
    make_queue, monkeypatch
):
    """With the Redis broadcast, the join script publishes the ``joined`` message itself (one
    round trip less per new visitor): the same message, sent once, for a socket of the
    identity that is open while it joins over the REST API."""
    store = get_store()
    if not getattr(store, "announce_joins", False):
        pytest.skip("only a RedisStore under the Redis broadcast announces joins itself")
    queue = await in_thread(make_queue)(capacity=1)
    identity = 'anon:"quoted" \\ ünïcode'

    def join_while_listening():
        for someone in ("anon:a", "anon:b", "anon:c"):
            services.join(queue, someone)
        services.tick(queue)  # admits anon:a: the admitted total is 1
        services.leave(queue, "anon:b")  # departure 1
        listener = store.client.pubsub(ignore_subscribe_messages=True)
        try:
            listener.subscribe(transport.channel_name(queue.store_id))
            services.open_connections(queue, [identity])  # what its socket does on connecting
            with monkeypatch.context() as patched:
                patched.setattr(transport, "publish", lambda *args: pytest.fail("sent twice"))
                services.join(queue, identity)
            message = None
            while message is None:  # the subscription's confirmation is skipped
                message = listener.get_message(timeout=TIMEOUT)
            return json.loads(message["data"])
        finally:
            listener.close()

    announced = await in_thread(join_while_listening)()
    sent = []
    monkeypatch.setattr(transport, "publish", lambda queue_id, payload: sent.append(payload))
    located = await in_thread(store.locate)(queue.store_id, identity, services.clock())
    publisher._joined(Queue, queue=queue, placement=located.placement, counts=located.counts)
    assert announced == json.loads(sent[0])
    assert (announced["identity"], announced["position"]) == (identity, 2)
    assert (announced["t"], announced["dt"]) == (1, 1)


async def test_a_join_is_announced_only_to_another_open_connection_of_its_identity(make_queue):
    """Every socket process of the queue hears each ``joined`` message, and only the
    identity's other tabs need one: a join with no connection open (a REST join), or whose
    one open connection is its own joining socket (a socket process's batch), sends none; a
    join from one of two tabs sends one. The joins are acknowledged alike."""
    store = get_store()
    if not getattr(store, "announce_joins", False):
        pytest.skip("only a RedisStore under the Redis broadcast announces joins itself")
    queue = await in_thread(make_queue)()

    def join_all_while_listening() -> tuple[list[str], list[str]]:
        listener = store.client.pubsub(ignore_subscribe_messages=True)
        try:
            listener.subscribe(transport.channel_name(queue.store_id))
            services.open_connections(queue, ["anon:one-tab"])
            services.open_connections(queue, ["anon:two-tabs", "anon:two-tabs"])
            joined = [services.join(queue, "anon:rest-only").state]
            joined += [
                status.state  # type: ignore[union-attr]
                for status in services.join_many(queue, ["anon:one-tab", "anon:two-tabs"])
            ]
            transport.publish(queue.store_id, json.dumps({"k": "sentinel"}).encode())
            heard = []
            while not heard or heard[-1] != "sentinel":
                message = listener.get_message(timeout=TIMEOUT)
                if message is not None:
                    body = json.loads(message["data"])
                    heard.append(body.get("identity") or body["k"])
            return joined, heard
        finally:
            listener.close()

    joined, heard = await in_thread(join_all_while_listening)()
    assert joined == ["waiting"] * 3
    assert heard == ["anon:two-tabs", "sentinel"]


# -- numbered admissions and departures: what an exact read saw is never counted again -------


async def test_a_tick_moves_a_seat_only_by_what_its_read_did_not_see(make_queue, hub):
    queue = await in_thread(make_queue)()
    # Read after admission 5 and departure 3 (order 4): the tick carrying them is no news.
    room, fresh, _ = await seat_in(
        queue, "anon:fresh", seq=10, order=10.0, position=5, admitted_total=5, departed_total=3
    )
    # Read before both: they move it.
    _, stale, _ = await seat_in(
        queue, "anon:stale", seq=11, order=11.0, position=8, admitted_total=4, departed_total=2
    )
    await room.on_message(tick(n=1, total=5, departed=[4.0], dt=3))
    assert (fresh.position, stale.position) == (5, 6)
    assert (fresh.departed_seen, stale.departed_seen) == (3, 3)

    # A departure ahead of both, one behind the fresh seat only, one behind both.
    await room.on_message(tick(n=0, total=5, departed=[12.0, 2.0, 10.5], dt=6))
    assert (fresh.position, stale.position) == (4, 4)


async def test_a_late_tick_moves_nobody_twice(make_queue, hub):
    queue = await in_thread(make_queue)()
    room, seat, frames = await seat_in(
        queue, seq=20, order=20.0, position=8, admitted_total=7, departed_total=5
    )
    # This tick's admissions and departures (numbers 4 and 5) were in the read already.
    await room.on_message(tick(n=2, total=6, departed=[2.0, 3.0], dt=5, waiting=10))
    assert seat.position == 8 and len(frames) == 1  # nothing new: no frame either
    # The next one moves it by what is new: one admission, one departure ahead.
    await room.on_message(tick(n=1, total=8, departed=[1.5, 30.0], dt=7))
    assert seat.position == 6
    # And the late one again, after that: still nothing.
    await room.on_message(tick(n=2, total=6, departed=[2.0, 3.0], dt=5))
    assert seat.position == 6


async def test_a_read_that_saw_some_of_a_ticks_departures_counts_the_rest(make_queue, hub):
    queue = await in_thread(make_queue)()
    room, seat, _ = await seat_in(queue, seq=10, order=10.0, position=9, departed_total=4)
    # Numbers 3..6: the read saw 3 (order 1) and 4 (order 2); 5 (order 3) is ahead, 6 behind.
    await room.on_message(tick(departed=[1.0, 2.0, 3.0, 20.0], dt=6))
    assert (seat.position, seat.departed_seen) == (8, 6)


async def test_the_exact_reads_and_the_tick_broadcast_agree_end_to_end(
    make_queue, hub, visitor, monkeypatch
):
    """Real services: one seat reads after an admission and a departure, one before; the
    tick's broadcast, delivered after both reads, leaves each at its exact place."""
    queue = await in_thread(make_queue)(capacity=1)
    people = [visitor() for _ in range(6)]
    for person in people:
        await in_thread(services.join)(queue, person.identity)
    sent = []
    monkeypatch.setattr(transport, "publish", lambda queue_id, payload: sent.append(payload))
    room = None
    seats = {}
    for name, person in (("early", people[4]), ("late", people[5])):
        seat = Seat(person.identity, Frames())
        room = await get_hub().attach(queue, seat)
        seats[name] = seat
    early_status = await in_thread(services.status)(queue, people[4].identity)
    room.apply_status(seats["early"], early_status, reply=True)
    assert seats["early"].position == 5

    await in_thread(services.leave)(queue, people[2].identity)  # departure 1, ahead of both
    result = await in_thread(services.tick)(queue, limit=0)  # drains the departure
    await in_thread(services.tick)(queue)  # admits the head: admission 1 (no departures)
    late_status = await in_thread(services.status)(queue, people[5].identity)
    assert (late_status.admitted_total, late_status.departed_total) == (1, 1)
    room.apply_status(seats["late"], late_status, reply=True)
    assert seats["late"].position == 4
    assert result.departed == [3.0] and result.departed_total == 1

    # Both tick broadcasts arrive now, after the late seat's read.
    ticks = [json.loads(p) for p in sent if json.loads(p)["k"] == "tick"]
    assert [(m["d"], m["dt"], m["t"]) for m in ticks] == [([3.0], 1, 0), ([], 1, 1)]
    for message in ticks:
        await room.on_message(message)
    exact = {
        name: (await in_thread(services.status)(queue, person.identity)).position
        for name, person in (("early", people[4]), ("late", people[5]))
    }
    assert exact == {"early": 3, "late": 4}
    assert {name: seat.position for name, seat in seats.items()} == exact


async def test_a_send_runs_inline_until_it_must_wait_then_goes_on_by_itself():
    """run_eagerly: a send with room finishes at once (no task); one that waits goes on in a
    task, sees the result or the error of what it waited for, and can be cancelled."""
    loop = asyncio.get_running_loop()
    steps = []

    async def send(waits_for=None):
        steps.append("start")
        if waits_for is not None:
            try:
                steps.append(await waits_for)
            except ValueError as exc:
                steps.append(f"error: {exc}")
                raise
        await asyncio.sleep(0)  # a bare yield, as a drain may do
        steps.append("done")

    ready = loop.create_future()
    pending = run_eagerly(send(ready))
    assert pending is not None and not pending.done() and steps[-1] == "start"
    ready.set_result("drained")
    await asyncio.wait_for(pending, TIMEOUT)
    assert steps[-2:] == ["drained", "done"]

    failing = loop.create_future()
    pending = run_eagerly(send(failing))
    failing.set_exception(ValueError("reset"))
    with pytest.raises(ValueError):
        await asyncio.wait_for(pending, TIMEOUT)
    assert steps[-1] == "error: reset"

    never = loop.create_future()
    pending = run_eagerly(send(never))
    await asyncio.sleep(0)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert not never.cancelled()  # the awaited future is the send's, left to its owner

    async def at_once():
        steps.append("inline")

    assert run_eagerly(at_once()) is None and steps[-1] == "inline"


async def test_the_sockets_of_a_new_room_look_their_queue_up_once(make_queue, hub, monkeypatch):
    from ticketqueue.core import QueueNotFound
    from ticketqueue.live import hub as hub_module

    queue = await in_thread(make_queue)()
    asked = []
    real = hub_module._get_queue

    async def counted(slug):
        asked.append(slug)
        await asyncio.sleep(0.01)  # the other handshakes of this moment arrive meanwhile
        return await real(slug)

    monkeypatch.setattr(hub_module, "_get_queue", counted)
    found = await asyncio.gather(*(get_hub().queue_for_slug(queue.slug) for _ in range(20)))
    assert asked == [queue.slug]
    assert {q.pk for q in found} == {queue.pk}
    # Not kept without a room: a later socket asks again (the row may have changed).
    await get_hub().queue_for_slug(queue.slug)
    assert asked == [queue.slug, queue.slug]
    refused = await asyncio.gather(
        *(get_hub().queue_for_slug("no-such-queue") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(error, QueueNotFound) for error in refused)
    assert asked.count("no-such-queue") == 1
