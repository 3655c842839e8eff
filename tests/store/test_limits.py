"""The store contract's request limits (the REST throttles' counters), on both backends."""

import random

import pytest

from ticketqueue.core import LimitWindow, limit_check
from ticketqueue.store import LimitHit, LimitResult
from ticketqueue.store.memory import MemoryStore

Q = "7"
T0 = 1_800_000_000.0  # a multiple of 60: the start of a minute's window


def allowed(store, *hits, now=T0, queue=Q):
    return [r.allowed for r in store.hit_limits(queue, hits, now)]


def test_a_limit_is_enforced_and_says_how_long_to_wait(store):
    hit = LimitHit("join_ip:10.0.0.1", 3, 60)
    assert [allowed(store, hit, now=T0 + i) for i in range(3)] == [[True]] * 3
    (refused,) = store.hit_limits(Q, [hit], T0 + 3)
    assert not refused.allowed
    # All three in this window: room only in the next one, once 1/3 of it has passed.
    assert refused.wait == pytest.approx(60 - 3 + 20)
    assert allowed(store, hit, now=T0 + 60 + 20 - 0.5) == [False]
    assert allowed(store, hit, now=T0 + 60 + 20) == [True]
    # Plain tuples do as well, and an empty list asks nothing.
    assert store.hit_limits(Q, [("other", 1, 60)], T0) == [LimitResult(True)]
    assert store.hit_limits(Q, [], T0) == []


def test_the_window_slides(store):
    hit = ("status_ip:10.0.0.1", 4, 10)
    assert allowed(store, hit, ("x", 1, 1), now=T0 + 5) == [True, True]
    for _ in range(3):
        assert allowed(store, hit, now=T0 + 5) == [True]
    assert allowed(store, hit, now=T0 + 9) == [False]
    # Next window: the previous four count for the part of it still inside the last 10 s.
    (early,) = store.hit_limits(Q, [hit], T0 + 10)  # 4 * 1.0 + 1 > 4
    assert not early.allowed and early.wait == pytest.approx(2.5)  # 4 * 0.75 + 1 = 4
    assert allowed(store, hit, now=T0 + 12.5) == [True]
    assert allowed(store, hit, now=T0 + 12.6) == [False]  # 4 * 0.74 + 1 + 1 > 4
    assert allowed(store, hit, now=T0 + 15) == [True]  # 4 * 0.5 + 1 + 1 = 4
    # Two windows later nothing is left.
    assert all(allowed(store, hit, now=T0 + 30 + i / 10)[0] for i in range(4))


def test_all_or_nothing(store):
    ip, identity = ("join_ip:10.0.0.1", 5, 60), ("join_identity:user:1", 1, 60)
    assert allowed(store, ip, identity) == [True, True]
    for _ in range(3):
        # The identity is over its limit: the IP's allowance is not used either.
        assert allowed(store, ip, identity) == [True, False]
    assert [allowed(store, ip) for _ in range(5)] == [[True]] * 4 + [[False]]


def test_waits_are_sensible(store):
    rng = random.Random(5)
    for k in range(200):
        limit, period = rng.randint(1, 5), rng.choice([1, 10, 60])
        name = f"n{k}"
        now = T0 + rng.random() * period
        while True:
            (result,) = store.hit_limits(Q, [(name, limit, period)], now)
            if not result.allowed:
                break
            now += rng.random() * period / limit / 4
        assert 0 < result.wait <= 2 * period
        # Just before the wait: still refused; at it: allowed.
        if result.wait > 0.01:
            assert allowed(store, (name, limit, period), now=now + result.wait - 0.01) == [False]
        assert allowed(store, (name, limit, period), now=now + result.wait + 1e-6) == [True]


def test_zero_limit_refuses_everything(store):
    (result,) = store.hit_limits(Q, [("x", 0, 60)], T0)
    assert not result.allowed and result.wait == 60


def test_names_with_odd_characters_are_separate(store):
    names = [
        "join_ip:::1",
        "join_ip:2001:db8::1",
        "join_ip:2001:db8::1%eth0",
        "join_identity:user:1",
        "join_identity:user:1:",
        "join_identity:{7}",
        "join_identity:}{",
        "join_identity:a b|c*?[x]",
        "join_identity:ünïcode",
    ]
    for name in names:
        assert allowed(store, (name, 1, 60)) == [True]
    for name in names:
        assert allowed(store, (name, 1, 60)) == [False]
    if hasattr(store, "client"):
        from redis.crc import key_slot

        # SCAN may return a key more than once (when Redis resizes its table meanwhile).
        keys = sorted(set(store.client.scan_iter(match=f"{store.prefix}:*")))
        assert len(keys) == len(names)
        slot = key_slot(store._key(Q, "meta").encode())
        assert {key_slot(key.encode()) for key in keys} == {slot}


def test_limits_are_per_queue_need_no_loaded_queue_and_go_with_it(store):
    hit = ("join_ip:10.0.0.1", 1, 60)
    assert allowed(store, hit, queue="1") == [True]
    assert allowed(store, hit, queue="2") == [True]
    assert allowed(store, hit, queue="1") == [False]
    store.delete("1")
    assert allowed(store, hit, queue="1") == [True]
    assert allowed(store, hit, queue="2") == [False]


def test_counters_expire(store):
    hit = ("status_ip:10.0.0.1", 2, 10)
    allowed(store, hit, now=T0 + 3)
    if hasattr(store, "client"):
        key = store._limit_key(Q, hit[0])
        # Needed until the end of the next window: 17 s after T0 + 3.
        assert 16_000 < store.client.pttl(key) <= 17_000
        allowed(store, ("other", 1, 1), now=T0 + 3)
        assert 0 < store.client.pttl(store._limit_key(Q, "other")) <= 2_000
    else:
        assert store._limit_count == 1
    assert allowed(store, hit, ("b", 1, 10), now=T0 + 3) == [True, True]
    assert allowed(store, hit, now=T0 + 3) == [False]


def test_memory_store_sweeps_expired_counters():
    store = MemoryStore()
    for i in range(5_000):
        store.hit_limits(Q, [(f"join_ip:10.0.{i // 256}.{i % 256}", 5, 10)], T0 + i / 1000)
    # Swept whenever the count doubles: never far above what is live.
    assert store._limit_count <= 5_000
    store.hit_limits(Q, [("late", 5, 10)], T0 + 100)
    assert store._limit_count == 1 and list(store._limits[Q]) == ["late"]
    store.delete(Q)
    assert store._limit_count == 0


def test_the_backends_agree_with_the_core_math(store):
    rng = random.Random(11)
    model: dict[str, LimitWindow] = {}
    now = T0
    for _ in range(400):
        now += rng.choice([0.0, 0.1, 0.7, 2.5, 9.0])
        picked = rng.sample(["a", "b:1", "c::1"], rng.randint(1, 2))
        hits = [(name, {"a": 3, "b:1": 2, "c::1": 5}[name], 6.0) for name in picked]
        results = store.hit_limits(Q, hits, now)
        expected = [limit_check(model.get(n), limit, period, now) for n, limit, period in hits]
        assert [r.allowed for r in results] == [wait is None for _, wait in expected]
        for result, (_, wait) in zip(results, expected, strict=True):
            assert result.wait == pytest.approx(wait or 0.0, abs=1e-6)
        if all(wait is None for _, wait in expected):
            for (name, _, _), (after, _) in zip(hits, expected, strict=True):
                model[name] = after


def test_hit_limits_many_counts_each_request_as_hit_limits_would(store):
    a, b = LimitHit("connect_ip:1.2.3.4", 2, 60.0), LimitHit("connect_identity:anon:x", 1, 60.0)
    requests = [[a, b], [a], [], [a, b], [b]]
    results = store.hit_limits_many(Q, requests, T0)
    assert [[r.allowed for r in result] for result in results] == [
        [True, True],
        [True],
        [],
        [False, False],  # a is full, b too: all or nothing, nothing counted
        [False],
    ]
    assert all(r.wait > 0 for r in results[3] + results[4])
    assert store.hit_limits_many(Q, [], T0) == []


def test_a_limit_whose_period_changed_counts_anew(store):
    """A site that changes a rate mid-sale (THROTTLE_RATES, a restart): the counter made under
    the old period is not read as windows of the new one."""
    assert allowed(store, ("join_ip:10.0.0.1", 1, 30), now=T0 + 20) == [True]
    assert allowed(store, ("join_ip:10.0.0.1", 1, 30), now=T0 + 40) == [False]
    assert allowed(store, ("join_ip:10.0.0.1", 1, 60), now=T0 + 60) == [True]
    assert allowed(store, ("join_ip:10.0.0.1", 1, 60), now=T0 + 70) == [False]
