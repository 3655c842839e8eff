import uuid

import pytest

from ticketqueue.store.memory import MemoryStore
from ticketqueue.testing import Clock


@pytest.fixture
def clock():
    """An injected clock: tests move time, nobody sleeps."""
    return Clock(1_800_000_000.0)


def make_redis_store():
    from django.conf import settings

    from ticketqueue.store.redis import RedisStore

    return RedisStore(url=settings.REDIS_URL, prefix=f"tqt{uuid.uuid4().hex[:8]}")


def drop_store(store, queue_ids=()):
    if hasattr(store, "client"):
        for key in store.client.scan_iter(match=f"{store.prefix}:*", count=1000):
            store.client.delete(key)
    store.disconnect()


@pytest.fixture
def live_store(settings):
    """The configured store (real Redis unless TICKETQUEUE_TEST_STORE=memory), emptied after."""
    from ticketqueue.store import get_store, reset_store

    reset_store()
    store = get_store()
    yield store
    drop_store(store)
    reset_store()


@pytest.fixture(params=["memory", "redis"])
def store(request):
    """Each store backend in turn: the contract suite runs against both."""
    if request.param == "memory":
        yield MemoryStore()
        return
    s = make_redis_store()
    yield s
    drop_store(s)


@pytest.fixture(autouse=True)
def courier_done():
    """What a test handed the process's courier (a release letting the next one in) is
    delivered before the next test starts, so no test hears another's notifications."""
    yield
    from ticketqueue import courier

    if courier._courier is not None:
        assert courier._courier.join(20), "the courier did not finish"
