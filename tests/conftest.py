import atexit
import os
import uuid

import pytest

from ticketqueue.store.memory import MemoryStore
from ticketqueue.testing import Clock


@pytest.fixture
def clock():
    """An injected clock: tests move time, nobody sleeps."""
    return Clock(1_800_000_000.0)


def make_redis_store(cluster=False):
    from django.conf import settings

    from ticketqueue.store.redis import RedisStore

    prefix = f"tqt{uuid.uuid4().hex[:8]}"
    if cluster:
        return RedisStore(url=cluster_url(), prefix=prefix, cluster=True)
    return RedisStore(url=settings.REDIS_URL, prefix=prefix)


def make_cluster_store():
    return make_redis_store(cluster=True)


_cluster = None


def cluster_url():
    """This run's own Redis Cluster (three masters, a replica each), started on first use and
    stopped when the run ends."""
    global _cluster
    from .redis_cluster import LocalCluster, available

    if _cluster is None:
        if not available():
            pytest.skip("redis-server is not installed")
        _cluster = LocalCluster().start()
        atexit.register(_cluster.stop)
    return _cluster.url


def commands_sent(monkeypatch, client):
    """The names of the commands ``client`` (a redis-py client) sends from now on."""
    sent = []
    execute = client.execute_command

    def counted(*args, **options):
        sent.append(args[0])
        return execute(*args, **options)

    monkeypatch.setattr(client, "execute_command", counted)
    return sent


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


def _on_cluster():
    """Cluster runs of the contract suite, left out of the embedded default's run
    (TICKETQUEUE_TEST_STORE=memory), which already runs it on one Redis too."""
    skip = os.environ.get("TICKETQUEUE_TEST_STORE") == "memory"
    return pytest.param("cluster", marks=pytest.mark.skipif(skip, reason="embedded run"))


@pytest.fixture(params=["memory", "redis", _on_cluster()])
def store(request):
    """Each store backend in turn: the contract suite runs against the in-process store, one
    Redis and a Redis Cluster."""
    if request.param == "memory":
        yield MemoryStore()
        return
    s = make_redis_store(cluster=request.param == "cluster")
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
