"""The companion contract (ticketqueue.store.companions): presence, leases, counters,
notification claims and the broadcast behave the same on MemoryStore and on real Redis."""

import asyncio
import threading
import time
import uuid

import pytest

from ticketqueue.store.companions import Broadcast, Claims, Counters, Leases, Presence

Q, OTHER = "7", "8"
T0 = 1_800_000_000.0


def test_every_store_has_its_five_companions(store):
    assert isinstance(store.presence, Presence)
    assert isinstance(store.leases, Leases)
    assert isinstance(store.counters, Counters)
    assert isinstance(store.claims, Claims)
    assert isinstance(store.broadcast, Broadcast)
    assert store.presence is store.presence  # one per store: every caller shares its state


def test_in_process_says_whether_other_processes_share_the_line(store):
    assert store.in_process is (not hasattr(store, "client"))


# -- presence ------------------------------------------------------------------------------


def test_a_person_is_present_while_one_of_their_connections_is(store):
    presence = store.presence
    presence.connect_many(Q, ["ann", "ann", "bob"], T0)  # two tabs of ann
    assert presence.connected(Q, ["ann", "bob", "cy"], T0) == {"ann", "bob"}
    presence.disconnect(Q, "ann", T0 + 5)
    assert presence.connected(Q, ["ann"], T0) == {"ann"}  # her other tab is open
    presence.disconnect(Q, "ann", T0 + 9)
    assert presence.connected(Q, ["ann", "bob"], T0) == {"bob"}
    assert presence.away(Q, ["ann", "bob", "cy"], T0) == {"ann": T0 + 9, "cy": None}


def test_a_connection_not_seen_since_counts_as_gone_until_refreshed(store):
    presence = store.presence
    presence.connect_many(Q, ["ann"], T0)  # its server crashed: no disconnect comes
    assert presence.connected(Q, ["ann"], T0 + 1) == set()
    assert presence.away(Q, ["ann"], T0 + 1) == {"ann": T0}
    presence.refresh_many(Q, ["ann"], T0 + 30)
    assert presence.connected(Q, ["ann"], T0 + 1) == {"ann"}
    assert presence.away(Q, ["ann"], T0 + 1) == {}


def test_presence_is_per_queue(store):
    store.presence.connect_many(Q, ["ann"], T0)
    assert store.presence.connected(OTHER, ["ann"], T0) == set()
    assert store.presence.away(OTHER, ["ann"], T0) == {"ann": None}


def test_a_disconnect_too_many_leaves_nobody_connected(store):
    presence = store.presence
    presence.connect_many(Q, ["ann"], T0)
    presence.disconnect(Q, "ann", T0 + 1)
    presence.disconnect(Q, "ann", T0 + 2)  # a late duplicate
    presence.connect_many(Q, ["bob"], T0 + 3)
    assert presence.connected(Q, ["ann", "bob"], T0) == {"bob"}
    assert presence.away(Q, ["ann"], T0) == {"ann": T0 + 2}


def test_presence_answers_for_many_people_in_their_order(store):
    """More identities than one slice of the Redis script reads (4,000), names of every kind."""
    people = [f"anon:{i}-é" for i in range(9_001)]
    here = people[::3]
    store.presence.connect_many(Q, here, T0)
    assert store.presence.connected(Q, people, T0) == set(here)
    away = store.presence.away(Q, people, T0)
    assert list(away) == [p for p in people if p not in set(here)]
    assert set(away.values()) == {None}


def test_nothing_asked_nothing_answered(store):
    store.presence.connect_many(Q, [], T0)
    store.presence.refresh_many(Q, [], T0)
    assert store.presence.connected(Q, [], T0) == set()
    assert store.presence.away(Q, [], T0) == {}


# -- leases --------------------------------------------------------------------------------


def test_lease_tokens_grow_and_only_the_newest_holder_renews(store):
    leases = store.leases
    assert leases.token(Q) == 0
    first = leases.acquire(Q, "a", 0.2)
    assert first == leases.token(Q) >= 1
    assert leases.acquire(Q, "b", 30) is None  # held
    assert leases.renew(Q, "a", first, 0.2)
    time.sleep(0.5)  # "a" stalls past its time to live
    second = leases.acquire(Q, "b", 30)
    assert second == first + 1 == leases.token(Q)
    assert not leases.renew(Q, "a", first, 30)  # stale: the lock and the token are b's
    assert leases.renew(Q, "b", second, 30)
    leases.release(Q, "a")  # a stale release frees nothing
    assert leases.acquire(Q, "c", 30) is None
    leases.release(Q, "b")
    assert leases.acquire(Q, "c", 30) == second + 1


def test_the_holder_takes_its_lease_again_with_a_new_token(store):
    leases = store.leases
    first = leases.acquire(Q, "a", 30)
    again = leases.acquire(Q, "a", 30)
    assert again == first + 1
    assert not leases.renew(Q, "a", first, 30)  # the older token is fenced off
    assert leases.renew(Q, "a", again, 30)


def test_leases_are_per_queue(store):
    assert store.leases.acquire(Q, "a", 30) == 1
    assert store.leases.acquire(OTHER, "b", 30) == 1
    assert store.leases.token(Q) == store.leases.token(OTHER) == 1


# -- counters ------------------------------------------------------------------------------


def test_counters_add_up_per_queue_and_name(store):
    counters = store.counters
    counters.add(Q, "joins_refused", 2)
    counters.add(Q, "joins_refused", 3)
    counters.add(Q, "passes_revoked", 1)
    counters.add(OTHER, "joins_refused", 7)
    assert counters.read([Q, OTHER, "9"]) == {
        Q: {"joins_refused": 5, "passes_revoked": 1},
        OTHER: {"joins_refused": 7},
        "9": {},
    }


# -- notification claims -------------------------------------------------------------------


def test_each_seq_is_claimed_once_per_channel(store):
    claims = store.claims
    assert claims.claim(Q, "turn:email", [1, 2, 3], 60) == {1, 2, 3}
    assert claims.claim(Q, "turn:email", [2, 3, 4], 60) == {4}
    assert claims.claim(Q, "turn:push", [2], 60) == {2}  # another channel
    assert claims.claim(OTHER, "turn:email", [2], 60) == {2}  # another queue
    assert claims.claim(Q, "turn:email", [], 60) == set()


def test_a_claim_given_back_or_run_out_can_be_claimed_again(store):
    claims = store.claims
    assert claims.claim(Q, "turn:email", [1, 2], 60) == {1, 2}
    claims.unclaim(Q, "turn:email", [2])
    claims.unclaim(Q, "turn:email", [])
    assert claims.claim(Q, "turn:email", [1, 2], 60) == {2}
    assert claims.claim(Q, "near:email", [5], 0.2) == {5}
    time.sleep(0.5)
    assert claims.claim(Q, "near:email", [5], 60) == {5}


@pytest.mark.parametrize("n", [1, 5_000])
def test_claims_of_a_whole_tick_are_answered_at_once(store, n):
    seqs = list(range(1, n + 1))
    assert store.claims.claim(Q, "turn:webhook", seqs, 60) == set(seqs)
    assert store.claims.claim(Q, "turn:webhook", seqs, 60) == set()


# -- the broadcast -------------------------------------------------------------------------


def channels(broadcast):
    """Channels of this test alone (the broadcast is process-wide, or a shared Redis)."""
    unique = uuid.uuid4().hex
    return broadcast.live_channel(unique), broadcast.live_channel(unique + "x")


def test_channels_are_named_per_queue_and_one_for_ended_passes(store):
    broadcast = store.broadcast
    assert broadcast.live_channel(Q) == broadcast.live_channel(Q)
    assert broadcast.live_channel(Q) != broadcast.live_channel(OTHER)
    assert broadcast.ended_passes_channel() not in {broadcast.live_channel(Q), ""}


@pytest.mark.asyncio
async def test_a_subscriber_hears_its_channels_from_any_thread_once_subscribed(store):
    broadcast = store.broadcast
    mine, other = channels(broadcast)
    heard = asyncio.Queue()
    loop = asyncio.get_running_loop()
    subscriber = broadcast.subscriber(lambda channel, payload: heard.put_nowait((channel, payload)))
    try:
        await subscriber.subscribe(mine)  # returns once a publish from now on is heard
        await loop.run_in_executor(None, broadcast.publish, other, b"not mine")
        await loop.run_in_executor(None, broadcast.publish, mine, b"\x00one")
        broadcast.publish(mine, b"two")
        assert await asyncio.wait_for(heard.get(), 5) == (mine, b"\x00one")
        assert await asyncio.wait_for(heard.get(), 5) == (mine, b"two")
        await subscriber.unsubscribe(mine)
        broadcast.publish(mine, b"after")
        await subscriber.subscribe(other)
        broadcast.publish(other, b"three")
        assert await asyncio.wait_for(heard.get(), 5) == (other, b"three")
        assert heard.empty()  # nothing of "not mine" nor "after"
    finally:
        await subscriber.close()


def test_a_listener_says_when_it_listens_then_hears_what_comes_after(store):
    broadcast = store.broadcast
    mine, other = channels(broadcast)
    broadcast.publish(mine, b"before")  # nobody listens: lost
    listener = broadcast.listen(mine)
    try:
        assert listener.get(timeout=5) == ("subscribed", None)
        sender = threading.Thread(target=broadcast.publish, args=(mine, b"a:1 b:2"))
        sender.start()
        sender.join()
        broadcast.publish(other, b"not mine")
        assert listener.get(timeout=5) == ("message", b"a:1 b:2")
        assert listener.get(timeout=0.2) is None
    finally:
        listener.close()
    broadcast.publish(mine, b"after")  # a closed listener is gone from the channel


@pytest.mark.asyncio
async def test_a_subscriber_takes_many_channels_at_once(store):
    """The first sockets of a process open many queues' rooms at the same moment (on a
    cluster, their channels live on different nodes)."""
    broadcast = store.broadcast
    channels = [broadcast.live_channel(f"{Q}-{i}") for i in range(12)]
    heard = asyncio.Queue()
    loop = asyncio.get_running_loop()
    subscriber = broadcast.subscriber(lambda channel, payload: heard.put_nowait((channel, payload)))
    try:
        await asyncio.gather(*(subscriber.subscribe(channel) for channel in channels))
        for channel in channels:
            await loop.run_in_executor(None, broadcast.publish, channel, channel.encode())
        got = {await asyncio.wait_for(heard.get(), 5) for _ in channels}
        assert got == {(channel, channel.encode()) for channel in channels}
    finally:
        await subscriber.close()
