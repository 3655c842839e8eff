"""What only the Redis backend has to show: cluster-safe keys, scripts that survive a script
cache flush, and typed errors instead of Redis ones."""

import pytest

from ticketqueue.core import QueueMode, QueueUnavailable
from ticketqueue.store import QueueConfig

from ..conftest import commands_sent, drop_store, make_redis_store

T0 = 1_800_000_000.0


@pytest.fixture
def redis_store():
    store = make_redis_store()
    yield store
    drop_store(store)


def test_every_key_of_a_queue_shares_its_hash_tag(redis_store):
    redis_store.configure("42", QueueConfig(mode=QueueMode.ALWAYS, capacity=1), T0)
    for i in range(3):
        redis_store.join("42", f"u{i}", T0)
    redis_store.admit("42", T0)
    redis_store.leave("42", "u2", T0)
    keys = set(redis_store.client.scan_iter(match=f"{redis_store.prefix}:*"))
    assert keys and all(k.startswith(f"{redis_store.prefix}:{{42}}:") for k in keys)


def test_scripts_come_back_after_the_script_cache_is_flushed(redis_store):
    redis_store.configure("1", QueueConfig(mode=QueueMode.ALWAYS), T0)
    redis_store.join("1", "a", T0)
    # What a restarted or flushed Redis answers: NOSCRIPT for every script the store knows.
    # (Not SCRIPT FLUSH: that would empty the cache of everyone sharing this Redis.)
    for script in redis_store._scripts.values():
        script.sha = "0" * 40
    assert redis_store.join("1", "b", T0).placement.position == 2
    assert redis_store.admit("1", T0)


def test_a_queue_redis_lost_is_a_typed_error_not_a_redis_one(redis_store):
    redis_store.configure("9", QueueConfig(), T0)
    redis_store.delete("9")
    with pytest.raises(QueueUnavailable) as err:
        redis_store.join("9", "a", T0)
    assert err.value.code == "queue_unavailable"
    with pytest.raises(QueueUnavailable):
        redis_store.admit("9", T0)


def test_an_unreachable_redis_is_a_typed_error():
    from ticketqueue.core import StoreUnreachable
    from ticketqueue.store.redis import RedisStore

    store = RedisStore(url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(StoreUnreachable) as err:
        store.join("1", "a", T0)
    assert (err.value.code, err.value.status) == ("store_unreachable", 503)
    with pytest.raises(StoreUnreachable):
        store.is_loaded("1")


def test_packed_replies_keep_an_identity_with_separators_whole(redis_store):
    redis_store.configure("5", QueueConfig(mode=QueueMode.ALWAYS), T0)
    odd = "user:a|b|c|||"
    assert redis_store.join("5", odd, T0).placement.identity == odd
    located = redis_store.locate("5", odd, T0)
    assert (located.placement.identity, located.placement.position) == (odd, 1)
    assert located.counts.waiting == 1


def test_a_batch_of_reads_or_heartbeats_is_one_script_per_thousand(redis_store, monkeypatch):
    """A socket process's resyncs, connects and heartbeats come in hundreds: each batch is
    one script call that reads the counts once, not a script per identity."""
    from ticketqueue.store import redis as redis_module

    redis_store.configure("7", QueueConfig(mode=QueueMode.ALWAYS), T0)
    people = [f"u{i}" for i in range(1500)]
    for person in people[:1200]:
        redis_store.join("7", person, T0)
    calls = []
    run = redis_module.RedisStore._run

    def counted(self, name, *args, **kwargs):
        calls.append(name)
        return run(self, name, *args, **kwargs)

    monkeypatch.setattr(redis_module.RedisStore, "_run", counted)
    monkeypatch.setattr(redis_module, "BATCH", 1000)
    located = redis_store.locate_many("7", people, T0 + 1)
    assert calls == ["locate", "locate"]  # 1,000 and 500
    assert [p.placement.position for p in located[:1200]] == list(range(1, 1201))
    assert all(p.placement is None for p in located[1200:])
    assert {p.counts.waiting for p in located} == {1200}
    calls.clear()
    assert redis_store.touch_many("7", people, T0 + 2) == [True] * 1200 + [False] * 300
    assert calls == ["touch", "touch"]


def test_a_batch_of_limit_hits_is_one_script(redis_store, monkeypatch):
    from ticketqueue.store.base import LimitHit

    redis_store.hit_limits("8", [("warm", 1, 60.0)], T0)  # the script is loaded
    sent = commands_sent(monkeypatch, redis_store.client)
    address = LimitHit("connect_ip:1.2.3.4", 300, 60.0)
    requests = [[address, LimitHit(f"connect_identity:u{i}", 1, 60.0)] for i in range(300)]
    requests[7] = []
    results = redis_store.hit_limits_many("8", [*requests, [address]], T0)
    assert sent == ["EVALSHA"]
    assert all(r.allowed for result in results[:-1] for r in result)  # 299 hits on 300 allowed
    assert results[7] == [] and [r.allowed for r in results[-1]] == [True]
    assert [r.allowed for r in redis_store.hit_limits("8", [address], T0)] == [False]
