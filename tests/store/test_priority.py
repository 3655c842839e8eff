"""The store contract's priority groups (one line, a band per group), on both backends: a
group's entries stand ahead of the public's, each group is first come first served, positions
are exact across groups, the pre-queue draw stays inside each group, a rebuild keeps it all."""

from ticketqueue.core import PRIORITY_BAND, QueueState, priority_of

from .test_contract import T0, Q, rebuild_as_held, setup


def test_a_group_stands_ahead_of_the_public_and_each_is_first_come_first_served(store):
    setup(store, capacity=10)
    joins = [("pub1", 0), ("pub2", 0), ("pre1", 1), ("vip1", 2), ("pre2", 1), ("pub3", 0)]
    placed = {
        who: store.join(Q, who, T0 + i, prio).placement for i, (who, prio) in enumerate(joins)
    }
    assert placed["pre1"].position == 1  # ahead of the two public entries already waiting
    assert placed["vip1"].position == 1
    assert placed["pre2"].position == 3  # behind vip1 and pre1, ahead of the public
    assert placed["pub3"].position == 6
    assert [priority_of(placed[w].order) for w, _ in joins] == [p for _, p in joins]
    line = [w.identity for w in store.dump(Q).waiting]
    assert line == ["vip1", "pre1", "pre2", "pub1", "pub2", "pub3"]
    for index, who in enumerate(line, start=1):
        assert store.locate(Q, who, T0 + 9).placement.position == index
    admitted = store.admit(Q, T0 + 10, limit=4)
    assert [a.identity for a in admitted] == ["vip1", "pre1", "pre2", "pub1"]
    assert [a.number for a in admitted] == [1, 2, 3, 4]
    assert store.locate(Q, "pub3", T0 + 10).placement.position == 2


def test_departures_carry_banded_orders(store):
    setup(store)
    store.join(Q, "pub1", T0)
    pre = store.join(Q, "pre1", T0, 1).placement
    assert pre.order == pre.seq - PRIORITY_BAND
    store.leave(Q, "pre1", T0 + 1)
    assert store.drain_departures(Q).orders == (pre.order,)


def test_the_pre_queue_draw_stays_inside_each_group(store):
    setup(store, state=QueueState.SCHEDULED)
    for i in range(8):
        store.join(Q, f"pub{i}", T0 + i)
        store.join(Q, f"pre{i}", T0 + i, 1)
    before = {w.seq: w.order for w in store.dump(Q).waiting}
    store.shuffle_prequeue(Q, seed=42)
    after = store.dump(Q).waiting
    assert sorted(w.order for w in after) == sorted(before.values())  # the same orders, dealt
    assert [w.identity[:3] for w in after] == ["pre"] * 8 + ["pub"] * 8
    assert {priority_of(w.order) for w in after if w.identity.startswith("pre")} == {1}


def test_a_rebuild_keeps_the_groups(store):
    setup(store)
    store.join(Q, "pub1", T0)
    store.join(Q, "pre1", T0, 1)
    rebuild_as_held(store, T0 + 1)
    assert [w.identity for w in store.dump(Q).waiting] == ["pre1", "pub1"]
    assert store.locate(Q, "pub1", T0 + 1).placement.position == 2
