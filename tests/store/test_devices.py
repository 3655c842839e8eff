"""The store contract's device binding (one device per person), on both backends."""

import pytest

from ticketqueue.core import QueueMode, QueueUnavailable
from ticketqueue.store import DeviceBinding, QueueConfig

Q = "7"
T0 = 1_800_000_000.0


@pytest.fixture
def queue(store):
    store.configure(Q, QueueConfig(mode=QueueMode.ALWAYS, capacity=1), T0)
    return store


def test_the_newest_device_takes_a_waiting_place(queue):
    store = queue
    assert store.bind_device(Q, "user:1", "phone", T0) == DeviceBinding()
    store.join(Q, "user:1", T0)
    assert store.bind_device(Q, "user:1", "phone", T0) == DeviceBinding()  # itself again
    assert store.bind_device(Q, "user:1", "laptop", T0) == DeviceBinding("phone")
    assert store.bind_device(Q, "user:1", "phone", T0) == DeviceBinding("laptop")  # and back
    assert store.devices(Q, ["user:1", "user:2"]) == {"user:1": "phone"}


def test_once_admitted_the_device_that_held_the_place_keeps_it(queue):
    store = queue
    store.join(Q, "user:1", T0)
    store.bind_device(Q, "user:1", "phone", T0)
    store.admit(Q, T0 + 1)
    assert store.bind_device(Q, "user:1", "laptop", T0 + 2) == DeviceBinding("phone", held=True)
    assert store.bind_device(Q, "user:1", "phone", T0 + 2) == DeviceBinding()
    assert store.devices(Q, ["user:1"]) == {"user:1": "phone"}
    # Someone else is not bound by it.
    assert store.bind_device(Q, "user:2", "laptop", T0 + 2) == DeviceBinding()


def test_an_admitted_place_without_a_device_binds_the_first_that_asks(queue):
    store = queue
    store.join(Q, "user:1", T0)
    store.admit(Q, T0 + 1)
    assert store.bind_device(Q, "user:1", "tablet", T0 + 2) == DeviceBinding()
    assert store.bind_device(Q, "user:1", "phone", T0 + 2).held


def test_after_the_pass_ends_a_new_device_may_take_over(queue):
    store = queue
    (seq,) = [store.join(Q, "user:1", T0).placement.seq]
    store.bind_device(Q, "user:1", "phone", T0)
    store.admit(Q, T0 + 1)
    store.release(Q, seq, T0 + 2)
    assert store.bind_device(Q, "user:1", "laptop", T0 + 3) == DeviceBinding("phone")


def test_bindings_need_the_queue_and_go_with_it(store):
    with pytest.raises(QueueUnavailable):
        store.bind_device("9", "user:1", "phone", T0)
    store.configure("9", QueueConfig(mode=QueueMode.ALWAYS), T0)
    store.bind_device("9", "user:1", "phone", T0)
    store.delete("9")
    store.configure("9", QueueConfig(mode=QueueMode.ALWAYS), T0)
    assert store.devices("9", ["user:1"]) == {}
