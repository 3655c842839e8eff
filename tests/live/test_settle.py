"""A socket process keeps its held sockets out of the collector's full collections
(live/settle.py) and still frees what closed sockets leave in reference cycles."""

import asyncio
import gc
import weakref

import pytest

from ticketqueue.live import Seat, settle
from ticketqueue.live.hub import get_hub

from .conftest import in_thread


class Thing:
    """A container object the collector tracks, that a weak reference can watch."""


def a_cycle() -> weakref.ref:
    """A reference cycle nobody else holds: garbage only the cyclic collector frees."""
    thing = Thing()
    thing.me = thing
    return weakref.ref(thing)


@pytest.fixture
def thawed():
    yield
    gc.unfreeze()


def test_new_sockets_are_frozen_once_and_the_garbage_before_them_is_freed(thawed):
    settler = settle.Settler()
    gone = a_cycle()
    kept = Thing()  # held, as a socket's objects are
    assert settler.settle(opened=1, closed=0, held=1) == "froze"
    assert gone() is None  # collected before the freeze, not frozen with the rest
    assert gc.get_freeze_count() > 0
    assert not any(obj is kept for obj in gc.get_objects())  # alive, and no longer scanned
    assert settler.settle(opened=1, closed=0, held=1) is None  # nothing opened since
    assert settler.settle(opened=2, closed=1, held=1) == "froze"


def test_cycles_left_among_the_frozen_are_swept_once_more_sockets_closed_than_are_held(thawed):
    settler = settle.Settler()
    thing = Thing()
    watch = weakref.ref(thing)
    assert settler.settle(opened=3, closed=0, held=3) == "froze"
    thing.me = thing  # a closed socket's leftovers: a cycle among frozen objects
    del thing
    gc.collect()
    assert watch() is not None  # frozen: full collections skip it
    assert settler.settle(opened=3, closed=1, held=2) is None  # fewer closed than held
    assert watch() is not None
    assert settler.settle(opened=3, closed=3, held=0) == "swept"
    assert watch() is None
    assert settler.settle(opened=3, closed=3, held=0) is None  # swept once, not again


class Frames(list):
    async def __call__(self, message):
        self.append(message)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_hub_settles_the_sockets_it_seats(make_queue, hub, monkeypatch, thawed):
    monkeypatch.setattr(settle, "SETTLE_PERIOD", 0.05)
    gc.unfreeze()
    queue = await in_thread(make_queue)()
    seats = [Seat(f"anon:{i}", Frames()) for i in range(3)]
    for seat in seats:
        await get_hub().attach(queue, seat)
    loop_hub = get_hub()
    assert (loop_hub.opened, loop_hub.held()) == (3, 3)
    for _ in range(100):
        await asyncio.sleep(0.02)
        if gc.get_freeze_count():
            break
    assert gc.get_freeze_count() > 0
    assert not any(obj is seats[0] for obj in gc.get_objects())
    for seat in seats:
        loop_hub.detach(seat)
    assert (loop_hub.closed, loop_hub.held()) == (3, 0)
