"""The store contract's counted token uses (a work token spent once, an invite used N times),
on both backends."""

import time

from ticketqueue.store.memory import MemoryStore

T0 = 1_800_000_000.0


def test_a_single_use_name_is_claimed_once_per_queue(store):
    assert store.claim_use("1", "work:abc", 1, 60, T0) is True
    assert store.claim_use("1", "work:abc", 1, 60, T0 + 1) is False
    assert store.claim_use("1", "work:abd", 1, 60, T0 + 1) is True
    assert store.claim_use("2", "work:abc", 1, 60, T0 + 1) is True


def test_an_n_use_name_is_counted(store):
    assert [store.claim_use("1", "invite:x", 3, 60, T0 + i) for i in range(5)] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_a_claim_needs_no_loaded_queue_and_goes_with_it(store):
    assert not store.is_loaded("3")
    assert store.claim_use("3", "x", 1, 60, T0) is True
    store.delete("3")
    assert store.claim_use("3", "x", 1, 60, T0) is True


def test_a_claim_ends_after_its_time_to_live(store):
    assert store.claim_use("4", "x", 1, 0.05, T0) is True
    if hasattr(store, "client"):  # Redis keeps time itself
        key = store._key("4", "use:x")
        assert 0 < store.client.pttl(key) <= 50
        time.sleep(0.08)
    assert store.claim_use("4", "x", 1, 60, T0 + 0.06) is True


def test_memory_store_sweeps_ended_claims():
    store = MemoryStore()
    for i in range(5_000):
        store.claim_use("1", f"n{i}", 1, 1, T0 + i / 100)
    assert len(store._claims) < 2_100  # swept whenever it doubles: never far above what is live
