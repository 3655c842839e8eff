"""Protocol version 2 through a real uvicorn server (both socket apps): a client that offers
the ``ticketqueue.v2`` subprotocol hears one ``line`` frame per update, the same bytes for
every socket of the queue, and keeps its own place from it (``ticketqueue.place``) exactly
where the store says it is."""

import asyncio
import contextlib
import json

import pytest

from ticketqueue import services
from ticketqueue.conf import queue_settings
from ticketqueue.live import get_hub
from ticketqueue.live.protocol import SUBPROTOCOL
from ticketqueue.place import Place

from .conftest import TIMEOUT, in_thread, next_message, socket_to

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def frames_until(ws, place, kind):
    """Read frames into ``place`` until one of ``kind``; returns that frame's text."""
    while True:
        text = await asyncio.wait_for(ws.recv(), TIMEOUT)
        place.apply(json.loads(text))
        if json.loads(text)["type"] == kind:
            return text


async def test_the_subprotocol_is_the_version(served, make_queue, visitor):
    _, base = served
    queue = await in_thread(make_queue)()
    async with socket_to(base, queue.slug, visitor().cookie, subprotocols=[SUBPROTOCOL]) as ws:
        assert ws.subprotocol == SUBPROTOCOL
        assert (await next_message(ws))["type"] == "queue_update"
    async with socket_to(base, queue.slug, visitor().cookie) as ws:
        assert ws.subprotocol is None  # no offer: version 1, as before
        assert (await next_message(ws))["type"] == "queue_update"


async def test_every_follower_hears_one_frame_and_keeps_its_exact_place(
    served, make_queue, visitor
):
    _, base = served
    queue = await in_thread(make_queue)(rate_per_minute=600)
    people = [visitor() for _ in range(24)]
    for person in people:
        await in_thread(services.join)(queue, person.identity)
    followers = people[8::2]  # places 9, 11, ... 23
    old = people[9]  # a version 1 socket beside them
    places = {p.identity: Place() for p in followers}
    async with contextlib.AsyncExitStack() as opened:
        legacy = await opened.enter_async_context(socket_to(base, queue.slug, old.cookie))
        sockets = [
            await opened.enter_async_context(
                socket_to(base, queue.slug, p.cookie, subprotocols=[SUBPROTOCOL])
            )
            for p in followers
        ]
        following = dict(zip(followers, sockets, strict=True))
        for person, ws in following.items():
            await frames_until(ws, places[person.identity], "queue_update")
            assert places[person.identity].position == people.index(person) + 1
        assert (await next_message(legacy))["position"] == 10

        # Admissions, then departures ahead of some followers and behind others, and both.
        rounds = [
            (2, [people[1], people[14]]),
            (0, [people[3], people[20], people[22]]),
            (3, [people[5], people[11]]),  # a follower itself leaves
        ]
        for admit, leaving in rounds:
            for person in leaving:
                await in_thread(services.leave)(queue, person.identity)
            await in_thread(services.tick)(queue, limit=admit)
            heard = set()
            for person, ws in list(following.items()):
                place = places[person.identity]
                if person in leaving:
                    await frames_until(ws, place, "left")
                    del following[person]  # no place to keep any more
                    continue
                heard.add(await frames_until(ws, place, "line"))
            assert len(heard) == 1  # the same bytes for every socket
            # ... written straight through ticketqueue's uvicorn protocol, framed once.
            room = get_hub().rooms[queue.store_id]
            assert all(seat._write_prepared is not None for seat in room.followers)
            for person in following:
                exact = await in_thread(services.status)(queue, person.identity)
                assert places[person.identity].position == exact.position, person.identity
                assert places[person.identity].eta_seconds == exact.eta_seconds
            legacy_exact = await in_thread(services.status)(queue, old.identity)
            message = await next_message(legacy)
            while message["type"] != "queue_update":
                message = await next_message(legacy)
            assert message["position"] == legacy_exact.position
        assert places[people[10].identity].position == 10 - 5 - 2  # 5 admitted, 2 ahead left


async def test_updates_between_two_lines_are_merged_into_one(served, make_queue, visitor, settings):
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "UPDATE_INTERVAL": 1.0}
    _, base = served
    queue = await in_thread(make_queue)()
    people = [visitor() for _ in range(12)]
    for person in people:
        await in_thread(services.join)(queue, person.identity)
    me = people[-1]
    place = Place()
    async with socket_to(base, queue.slug, me.cookie, subprotocols=[SUBPROTOCOL]) as ws:
        await frames_until(ws, place, "queue_update")
        assert place.position == 12
        await in_thread(services.tick)(queue, limit=1)  # the first line goes out at once
        await frames_until(ws, place, "line")
        # Three more updates inside the interval: one line frame carries them all.
        for i, person in enumerate(people[3:6]):
            await in_thread(services.leave)(queue, person.identity)
            await in_thread(services.tick)(queue, limit=i % 2)
        merged = json.loads(await frames_until(ws, place, "line"))
        assert len(merged["departed"]) == 3
        exact = await in_thread(services.status)(queue, me.identity)
        assert place.position == exact.position == 12 - 1 - 1 - 3


async def test_the_plain_client_in_the_docs_follows_its_place_to_its_pass(
    served, make_queue, visitor
):
    """docs/protocol.md's Python client, run as written: it takes a place and returns its pass."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    example = text.split("A plain Python client", 1)[1].split("```python\n", 1)[1]
    namespace = {}
    exec(example.split("```", 1)[0], namespace)  # noqa: S102 - our own documentation
    _, base = served
    queue = await in_thread(make_queue)()
    ahead, me = visitor(), visitor()
    await in_thread(services.join)(queue, ahead.identity)
    site = base.replace("ws", "http", 1)
    following = asyncio.ensure_future(namespace["follow"](site, queue.slug, me.cookie))
    while (await in_thread(services.status)(queue, me.identity)).position != 2:
        await asyncio.sleep(0.05)
    await in_thread(services.tick)(queue, limit=2)
    token = await asyncio.wait_for(following, TIMEOUT)
    exact = await in_thread(services.status)(queue, me.identity)
    assert exact.state == "admitted" and token == exact.pass_token


async def test_the_heartbeats_of_many_sockets_are_written_together(
    served, make_queue, visitor, monkeypatch, live_settings
):
    """Each socket's heartbeat marks its person present and its entry seen, written for all
    of them in one batch; a waiting socket whose entry the store no longer holds is told."""
    import time

    from ticketqueue import presence
    from ticketqueue.live import hub as hub_module
    from ticketqueue.live.connection import QueueSocket
    from ticketqueue.store import get_store

    from .conftest import heartbeats_written

    batches = []
    write = services.heartbeats

    def recorded(queue, identities, now=None):
        batches.append(list(identities))
        return write(queue, identities, now)

    monkeypatch.setattr(hub_module, "_heartbeats", in_thread(recorded))
    monkeypatch.setattr(hub_module, "RESYNC_PERIOD", 3600)  # only the flush below writes
    ticks = [0.0]  # the heartbeat throttle's clock: a connect counts as the first heartbeat
    monkeypatch.setattr(QueueSocket, "clock", staticmethod(lambda: ticks[0]))
    _, base = served
    queue = await in_thread(make_queue)()
    people = [visitor() for _ in range(6)]
    for person in people:
        await in_thread(services.join)(queue, person.identity)
    async with contextlib.AsyncExitStack() as opened:
        sockets = [
            await opened.enter_async_context(
                socket_to(base, queue.slug, p.cookie, subprotocols=[SUBPROTOCOL])
            )
            for p in people
        ]
        for ws in sockets:
            await next_message(ws)
        ticks[0] += 30  # more than HEARTBEAT_INTERVAL / 2 later
        for ws in sockets:
            await ws.send(json.dumps({"type": "heartbeat"}))
            await ws.send(json.dumps({"type": "status"}))  # answered after the heartbeat
            assert (await next_message(ws))["state"] == "waiting"
        assert batches == []  # nothing written per heartbeat
        # The last one's entry goes from the store without a word to its socket (as if lost).
        await in_thread(get_store().leave)(queue.store_id, people[-1].identity, time.time())
        heard_at = time.time() + 100
        monkeypatch.setattr(services, "clock", lambda: heard_at)
        await heartbeats_written(queue)
        assert [sorted(b) for b in batches] == [sorted(p.identity for p in people)]
        told = await next_message(sockets[-1])
        assert (told["type"], told["code"]) == ("error", "entry_not_found")
        # Present as of the heartbeats, long after they connected.
        timeout = float(queue_settings.PRESENCE_TIMEOUT)
        connected = await in_thread(presence.connected)(
            queue.store_id, [p.identity for p in people], heard_at + timeout - 5
        )
        assert connected == {p.identity for p in people}
