"""The store contract: every backend passes the same suite (MemoryStore and real Redis)."""

import random
import threading
import time

import pytest

from ticketqueue.core import (
    FLOW_WINDOW,
    EntryState,
    PassLimitReached,
    QueueClosed,
    QueueFull,
    QueueMode,
    QueueState,
    QueueUnavailable,
    estimate_eta,
    flow_in_window,
    measured_rate,
    shuffle_order,
)
from ticketqueue.store import (
    ActiveRecord,
    Counts,
    LimitHit,
    LimitResult,
    QueueConfig,
    WaitingRecord,
)
from ticketqueue.store.base import departed_total_after_loss
from ticketqueue.store.memory import MemoryStore

Q = "7"
T0 = 1_800_000_000.0


def setup(store, **knobs):
    knobs.setdefault("mode", QueueMode.ALWAYS)
    store.configure(Q, QueueConfig(**knobs), T0)
    return store


def join_many(store, n, now=T0, prefix="u"):
    return [store.join(Q, f"{prefix}{i}", now).placement for i in range(n)]


def line(store):
    return [w.seq for w in store.dump(Q).waiting]


def rebuild_as_held(store, now, dump=None):
    """Rebuild the queue from what the store holds (an operator's rebuild with nothing lost),
    or from ``dump`` (what the rows say after the store lost it)."""
    dump = store.dump(Q) if dump is None else dump
    store.rebuild(
        Q,
        dump.config,
        waiting=dump.waiting,
        active=dump.active,
        next_seq=dump.next_seq,
        admitted_total=dump.admitted_total,
        now=now,
    )


# -- joining -----------------------------------------------------------------------------


def test_join_gives_increasing_seqs_and_exact_positions(store):
    setup(store)
    placed = join_many(store, 5)
    assert [p.seq for p in placed] == [1, 2, 3, 4, 5]
    assert [p.position for p in placed] == [1, 2, 3, 4, 5]
    assert all(p.created and p.state is EntryState.WAITING for p in placed)
    assert store.counts(Q, T0).waiting == 5


def test_join_is_idempotent_per_identity(store):
    setup(store)
    join_many(store, 3)
    again = store.join(Q, "u1", T0 + 5).placement
    assert (again.seq, again.position, again.created) == (2, 2, False)
    assert store.counts(Q, T0).waiting == 3


def test_position_is_exact_after_people_leave(store):
    setup(store)
    join_many(store, 6)
    left = store.leave(Q, "u2", T0)
    assert left.state is EntryState.LEFT and left.seq == 3
    assert store.leave(Q, "u2", T0) is None
    assert store.position(Q, 6) == 5
    assert store.position(Q, 3) is None
    assert store.locate(Q, "u5", T0).placement.position == 5
    assert store.locate(Q, "u2", T0).placement is None


def test_rejoin_after_leaving_goes_to_the_back(store):
    setup(store)
    join_many(store, 3)
    store.leave(Q, "u0", T0)
    back = store.join(Q, "u0", T0).placement
    assert back.seq == 4 and back.position == 3 and back.created


def test_closed_queue_refuses_joins_and_changes_nothing(store):
    setup(store)
    join_many(store, 2)
    assert store.close(Q, T0) == 2
    with pytest.raises(QueueClosed) as err:
        store.join(Q, "late", T0)
    assert err.value.code == "queue_closed"
    counts = store.counts(Q, T0)
    assert (counts.state, counts.waiting) == (QueueState.CLOSED, 0)
    assert store.locate(Q, "u0", T0).placement is None


def test_full_queue_refuses_new_joins_but_not_returning_ones(store):
    setup(store, max_size=2)
    join_many(store, 2)
    with pytest.raises(QueueFull) as err:
        store.join(Q, "third", T0)
    assert err.value.code == "queue_full"
    assert store.join(Q, "u1", T0).placement.seq == 2
    assert store.counts(Q, T0).waiting == 2


def test_unloaded_queue_is_unavailable(store):
    with pytest.raises(QueueUnavailable):
        store.join(Q, "u", T0)
    assert not store.is_loaded(Q)


def test_joins_of_one_moment_each_get_their_own_place_in_order(store):
    setup(store, max_size=4)
    store.join(Q, "early", T0)
    answers = store.join_many(Q, ["a", "b", "early", "a", "c", "d"], T0 + 1)
    placed = [a.placement for a in answers[:5]]
    assert [(p.identity, p.seq, p.position, p.created) for p in placed] == [
        ("a", 2, 2, True),
        ("b", 3, 3, True),
        ("early", 1, 1, False),
        ("a", 2, 2, False),  # the same identity twice: its one place twice
        ("c", 4, 4, True),
    ]
    assert [a.counts.waiting for a in answers[:5]] == [2, 3, 3, 3, 4]
    assert isinstance(answers[5], QueueFull)  # refused alone: the others stand
    assert line(store) == [1, 2, 3, 4]
    assert [r.identity for r in store.journal(Q)] == ["early", "a", "b", "c"]


def test_joins_of_one_moment_in_a_closed_or_unloaded_queue(store):
    with pytest.raises(QueueUnavailable):  # nothing went through: the batch may be sent again
        store.join_many(Q, ["a", "b"], T0)
    assert not store.is_loaded(Q)
    setup(store)
    store.close(Q, T0)
    answers = store.join_many(Q, ["a", "b"], T0)
    assert [type(a) for a in answers] == [QueueClosed, QueueClosed]
    assert store.counts(Q, T0).joined_total == 0
    assert store.join_many(Q, [], T0) == []
    setup(store)
    assert store.is_loaded(Q)


def test_a_join_within_limits_counts_them_first_all_or_nothing(store):
    ip, identity = LimitHit("join_ip:10.0.0.1", 3, 60), LimitHit("join_identity:a", 2, 60)
    with pytest.raises(QueueUnavailable):  # nothing counted: the call may be made again
        store.join_within_limits(Q, "a", T0, [ip, identity], T0)
    setup(store, max_size=2)
    first = store.join_within_limits(Q, "a", T0, [ip, identity], T0)
    assert (first.placement.identity, first.placement.seq, first.placement.created) == (
        "a",
        1,
        True,
    )
    again = store.join_within_limits(Q, "a", T0 + 1, [ip, identity], T0 + 1)
    assert (again.placement.seq, again.placement.created) == (1, False)
    # The identity's limit is used up: refused with its wait, the address's left as it was,
    # and no place asked for.
    refused = store.join_within_limits(Q, "a", T0 + 2, [ip, identity], T0 + 2)
    assert [r.allowed for r in refused] == [True, False] and refused[1].wait > 0
    assert store.hit_limits(Q, [ip], T0 + 2) == [LimitResult(True)]  # its third hit
    over = store.join_within_limits(Q, "b", T0 + 3, [ip], T0 + 3)
    assert [r.allowed for r in over] == [False]
    assert line(store) == [1]
    # A refusal of the join itself comes after the limits had room, as join's would.
    store.join(Q, "c", T0 + 4)
    with pytest.raises(QueueFull):
        store.join_within_limits(Q, "d", T0 + 5, [("join_ip:10.0.0.2", 3, 60)], T0 + 5)
    assert store.hit_limits(Q, [("join_ip:10.0.0.2", 1, 60)], T0 + 5)[0].allowed is False
    # No limits: a plain join.
    assert store.join_within_limits(Q, "a", T0 + 6, [], T0 + 6).placement.seq == 1


# -- modes -------------------------------------------------------------------------------


def test_auto_mode_admits_at_once_while_there_is_room(store):
    setup(store, mode=QueueMode.AUTO, capacity=2)
    a, b, c = join_many(store, 3)
    assert a.state is EntryState.ADMITTED and a.position == 0
    assert a.expires_at == pytest.approx(T0 + 900)
    assert b.state is EntryState.ADMITTED
    assert c.state is EntryState.WAITING and c.position == 1
    assert store.counts(Q, T0).active == 2


def test_auto_mode_never_lets_a_newcomer_pass_someone_waiting(store):
    setup(store, mode=QueueMode.AUTO, capacity=1)
    first, second = join_many(store, 2)
    store.release(Q, first.seq, T0 + 1)
    third = store.join(Q, "late", T0 + 1).placement
    assert third.state is EntryState.WAITING and third.position == 2
    assert [a.seq for a in store.admit(Q, T0 + 2)] == [second.seq]


def test_always_mode_queues_everyone(store):
    setup(store, mode=QueueMode.ALWAYS, capacity=5)
    assert store.join(Q, "a", T0).placement.state is EntryState.WAITING


def test_off_mode_admits_everyone(store):
    setup(store, mode=QueueMode.OFF, capacity=1)
    assert all(p.state is EntryState.ADMITTED for p in join_many(store, 3))


def test_scheduled_and_paused_queues_take_joins_but_admit_nobody(store):
    for state in (QueueState.SCHEDULED, QueueState.PAUSED):
        store.delete(Q)
        setup(store, state=state, mode=QueueMode.AUTO, capacity=5)
        assert store.join(Q, "a", T0).placement.state is EntryState.WAITING
        assert store.admit(Q, T0) == []


# -- admission ---------------------------------------------------------------------------


def test_admit_is_fifo_and_never_past_capacity(store):
    setup(store, capacity=3)
    join_many(store, 10)
    first = store.admit(Q, T0 + 1)
    assert [a.seq for a in first] == [1, 2, 3]
    assert [a.number for a in first] == [1, 2, 3]
    assert first[0].expires_at == pytest.approx(T0 + 1 + 900)
    assert store.admit(Q, T0 + 2) == []
    store.release(Q, 2, T0 + 3)
    fourth = store.admit(Q, T0 + 3)
    assert [(a.seq, a.number) for a in fourth] == [(4, 4)]
    assert store.counts(Q, T0).active == 3
    assert store.position(Q, 5) == 1


def test_admit_abandons_heads_unseen_past_the_grace_in_the_same_step(store):
    setup(store, capacity=2, disconnect_grace=100)
    join_many(store, 5)  # all seen at T0
    for identity in ("u1", "u3"):
        assert store.touch(Q, identity, T0 + 60)
    # At T0 + 150: u0, u2 and u4 are unseen for 150 s; u1 and u3 were seen 90 s ago.
    admitted = store.admit(Q, T0 + 150)
    assert [(a.seq, a.number) for a in admitted] == [(2, 1), (4, 2)]
    # u0 and u2 stood ahead of an admission: abandoned, journalled, numbered departures.
    assert {c.seq: c.state for c in store.journal(Q) if c.seq < 5} == {
        1: EntryState.ABANDONED,
        2: EntryState.ADMITTED,
        3: EntryState.ABANDONED,
        4: EntryState.ADMITTED,
    }
    departures = store.drain_departures(Q)
    assert len(departures.orders) == 2
    assert store.counts(Q, T0 + 150).departed_total == departures.departed_total
    # u4 was not reached (capacity): it stays in line until the next admission or cleanup.
    assert line(store) == [5]
    assert store.locate(Q, "u0", T0 + 150).placement is None


def test_admit_without_a_grace_never_abandons(store):
    setup(store, capacity=2)
    join_many(store, 3)
    assert [a.seq for a in store.admit(Q, T0 + 10**6)] == [1, 2]
    assert store.drain_departures(Q).orders == ()


def test_a_configured_grace_survives_a_rebuild(store):
    config = QueueConfig(mode=QueueMode.ALWAYS, capacity=1, disconnect_grace=100)
    store.rebuild(
        Q,
        config,
        waiting=[WaitingRecord(1, "old", 1.0, T0), WaitingRecord(2, "new", 2.0, T0 + 90)],
        active=[],
        next_seq=2,
        admitted_total=0,
        now=T0,
    )
    assert store.dump(Q).config == config
    assert [a.identity for a in store.admit(Q, T0 + 150)] == ["new"]


def test_an_identity_that_had_its_passes_may_not_join_again(store):
    setup(store, capacity=1, passes_per_identity=1, mode=QueueMode.AUTO)
    first = store.join(Q, "fan", T0).placement  # admitted at once: its one pass
    assert first.state is EntryState.ADMITTED
    assert store.join(Q, "fan", T0 + 1).placement.seq == first.seq  # still live: the same
    store.release(Q, first.seq, T0 + 2)  # bought
    with pytest.raises(PassLimitReached):
        store.join(Q, "fan", T0 + 3)
    assert store.counts(Q, T0 + 3).joined_total == 1  # nothing changed
    # Admitted from the line counts the same; others are not affected.
    store.join(Q, "a", T0 + 3)
    store.join(Q, "b", T0 + 3)  # waits behind a
    store.release(Q, 2, T0 + 4)
    assert [x.identity for x in store.admit(Q, T0 + 4)] == ["b"]
    store.expire(Q, T0 + 2000)
    for who in ("a", "b"):
        with pytest.raises(PassLimitReached):
            store.join(Q, who, T0 + 2001)
    # The count lives on through a rebuild of the held queue, and comes from the rows after a
    # loss; with no limit anyone may come back.
    rebuild_as_held(store, T0 + 2001)
    with pytest.raises(PassLimitReached):
        store.join(Q, "fan", T0 + 2002)
    store.delete(Q)
    store.rebuild(
        Q,
        QueueConfig(mode=QueueMode.AUTO, capacity=1, passes_per_identity=2),
        waiting=[],
        active=[],
        next_seq=3,
        admitted_total=3,
        now=T0 + 2003,
        passes_given={"fan": 2, "a": 1},
    )
    with pytest.raises(PassLimitReached):
        store.join(Q, "fan", T0 + 2003)
    assert store.join(Q, "a", T0 + 2003).placement.created  # a second pass of two
    setup(store, capacity=1, mode=QueueMode.AUTO)  # the limit lifted
    store.release(Q, 4, T0 + 2004)
    assert store.join(Q, "fan", T0 + 2004).placement.created


def test_admit_limit_and_operator_override(store):
    setup(store, rate_per_minute=60)  # one a second, a bucket of two
    join_many(store, 10)
    assert len(store.admit(Q, T0, limit=1)) == 1
    assert len(store.admit(Q, T0)) == 1  # the bucket held two
    assert store.admit(Q, T0) == []
    assert len(store.admit(Q, T0, limit=4, use_rate=False)) == 4


def test_rate_is_a_token_bucket(store):
    setup(store, rate_per_minute=120)  # two a second, bucket of four
    join_many(store, 50)
    assert len(store.admit(Q, T0)) == 4
    assert len(store.admit(Q, T0 + 0.5)) == 1
    assert len(store.admit(Q, T0 + 1.0)) == 1
    # A tick that comes very late catches up by the bucket size, never more.
    assert len(store.admit(Q, T0 + 60)) == 4
    # A clock that goes backwards adds nothing.
    assert store.admit(Q, T0 + 30) == []


def test_rate_and_capacity_combine(store):
    setup(store, capacity=2, rate_per_minute=600)
    join_many(store, 10)
    assert len(store.admit(Q, T0)) == 2


def test_expire_frees_capacity(store):
    setup(store, capacity=2, purchase_window=60)
    join_many(store, 4)
    store.admit(Q, T0)
    assert store.expire(Q, T0 + 59) == []
    assert store.pass_active(Q, 1, T0 + 59)
    expired = store.expire(Q, T0 + 60)
    assert sorted(c.seq for c in expired) == [1, 2]
    assert all(c.state is EntryState.EXPIRED for c in expired)
    assert not store.pass_active(Q, 1, T0 + 60)
    assert [a.seq for a in store.admit(Q, T0 + 60)] == [3, 4]


def test_pass_is_inactive_past_expiry_even_before_expire_runs(store):
    setup(store, capacity=1, purchase_window=10)
    join_many(store, 1)
    store.admit(Q, T0)
    assert store.pass_active(Q, 1, T0 + 9.9)
    assert not store.pass_active(Q, 1, T0 + 10)


def test_release_and_revoke(store):
    setup(store, capacity=2)
    join_many(store, 4)
    store.admit(Q, T0)
    done = store.release(Q, 1, T0)
    assert done.state is EntryState.COMPLETED and done.identity == "u0"
    assert store.release(Q, 1, T0) is None  # twice: nothing more
    assert store.release(Q, 99, T0) is None  # unknown
    assert store.release(Q, 3, T0) is None  # waiting, not active
    revoked = store.revoke(Q, [2, 4, 99], T0)
    assert sorted(c.seq for c in revoked) == [2, 4]
    assert all(c.state is EntryState.REVOKED for c in revoked)
    assert store.counts(Q, T0).active == 0 and line(store) == [3]
    assert store.locate(Q, "u0", T0).placement is None
    assert store.join(Q, "u0", T0).placement.seq == 5  # a finished identity may queue again


def test_end_idle_ends_active_passes_only(store):
    setup(store, capacity=2, purchase_window=600)
    join_many(store, 3)
    store.admit(Q, T0)
    ended = store.end_idle(Q, [2, 2, 3, 99], T0 + 30)  # 3 is waiting, 99 unknown
    assert [(c.seq, c.state, c.identity) for c in ended] == [(2, EntryState.ABANDONED, "u1")]
    assert ended[0].admitted_at == T0 and ended[0].expires_at == T0 + 600
    assert not store.pass_active(Q, 2, T0 + 30) and store.pass_active(Q, 1, T0 + 30)
    assert store.counts(Q, T0 + 30).active == 1 and line(store) == [3]
    assert [c.seq for c in store.journal(Q) if c.state is EntryState.ABANDONED] == [2]
    assert store.locate(Q, "u1", T0 + 30).placement is None  # the identity's place is over
    assert store.end_idle(Q, [2], T0 + 31) == []  # once


def test_head_reads_the_front_of_the_line(store):
    setup(store)
    join_many(store, 6)
    assert [w.seq for w in store.head(Q, 3)] == [1, 2, 3]
    first = store.head(Q, 1)[0]
    assert (first.identity, first.order, first.seen_at) == ("u0", 1.0, T0)
    assert [w.seq for w in store.head(Q, 3, after=2.0)] == [3]  # above the mark, within 3
    assert [w.seq for w in store.head(Q, 5, after=2.0)] == [3, 4, 5]
    assert store.head(Q, 2, after=2.0) == [] and store.head(Q, 0) == []
    assert [w.seq for w in store.head(Q, 100)] == [1, 2, 3, 4, 5, 6]
    store.leave(Q, "u0", T0)
    assert [w.seq for w in store.head(Q, 2, after=1.0)] == [2, 3]


def test_head_returns_at_most_limit(store):
    setup(store)
    join_many(store, 6)
    assert [w.seq for w in store.head(Q, 5, limit=2)] == [1, 2]
    assert [w.seq for w in store.head(Q, 5, after=2.0, limit=2)] == [3, 4]


def test_marks_only_rise_and_go_with_the_queue(store):
    setup(store)
    assert store.marks(Q) == {}
    assert store.advance_mark(Q, "near", 5.0) is None
    assert store.advance_mark(Q, "near", 3.0) == 5.0  # never lowered
    assert store.advance_mark(Q, "near", 7.5) == 5.0
    assert store.advance_mark(Q, "ending", T0 + 0.25) is None
    assert store.marks(Q) == {"near": 7.5, "ending": T0 + 0.25}
    assert store.marks("other") == {}
    rebuild_as_held(store, T0)
    assert store.marks(Q)["near"] == 7.5  # a rebuild keeps who was told
    store.delete(Q)
    assert store.marks(Q) == {}


def test_passes_lists_by_expiry(store):
    setup(store, capacity=10, purchase_window=100)
    join_many(store, 2)
    store.admit(Q, T0)
    store.join(Q, "late", T0 + 50)
    store.admit(Q, T0 + 50)
    every = store.passes(Q)
    assert [(p.seq, p.identity, p.admitted_at, p.expires_at) for p in every] == [
        (1, "u0", T0, T0 + 100),
        (2, "u1", T0, T0 + 100),
        (3, "late", T0 + 50, T0 + 150),
    ]
    assert [p.admission_number for p in every] == [1, 2, 3]
    assert [p.seq for p in store.passes(Q, expires_by=T0 + 100)] == [1, 2]
    assert [p.seq for p in store.passes(Q, expires_after=T0 + 100)] == [3]
    assert [p.seq for p in store.passes(Q, limit=1)] == [1]


def test_abandon_only_the_unseen(store):
    setup(store)
    join_many(store, 3, now=T0)
    assert store.touch(Q, "u1", T0 + 100)
    assert not store.touch(Q, "nobody", T0 + 100)
    gone = store.abandon(Q, seen_before=T0 + 50, now=T0 + 100)
    assert sorted(c.seq for c in gone) == [1, 3]
    assert all(c.state is EntryState.ABANDONED for c in gone)
    assert line(store) == [2]


def test_close_keeps_active_passes(store):
    setup(store, capacity=1)
    join_many(store, 3)
    store.admit(Q, T0)
    assert store.close(Q, T0) == 2
    assert store.pass_active(Q, 1, T0)
    assert store.admit(Q, T0) == []
    # Closed is final: configuring it open again does not reopen it.
    store.configure(Q, QueueConfig(state=QueueState.OPEN), T0)
    with pytest.raises(QueueClosed):
        store.join(Q, "x", T0)


# -- pre-queue ---------------------------------------------------------------------------


def test_prequeue_shuffle_is_seeded_and_keeps_later_joins_behind(store):
    setup(store, state=QueueState.SCHEDULED)
    join_many(store, 20)
    orders = store.shuffle_prequeue(Q, seed=1234)
    assert orders == shuffle_order([(s, float(s)) for s in range(1, 21)], 1234)
    expected = sorted(orders, key=orders.__getitem__)
    assert line(store) == expected
    assert expected != list(range(1, 21))
    late = store.join(Q, "late", T0).placement
    assert late.position == 21
    assert store.position(Q, expected[0]) == 1


# -- journal, departures, flow ------------------------------------------------------------


def test_journal_records_the_latest_change_per_entry(store):
    setup(store, capacity=1)
    join_many(store, 2)
    records = store.journal(Q)
    assert [(c.seq, c.state) for c in records] == [(1, EntryState.WAITING), (2, EntryState.WAITING)]
    store.admit(Q, T0 + 1)
    records = store.journal(Q)
    assert [(c.seq, c.state) for c in records] == [
        (2, EntryState.WAITING),
        (1, EntryState.ADMITTED),
    ]
    admitted = records[1]
    assert admitted.identity == "u0" and admitted.admitted_at == pytest.approx(T0 + 1)
    assert admitted.admission_number == 1
    store.ack(Q, records)
    assert store.journal(Q) == []


def test_ack_keeps_a_record_replaced_since_it_was_read(store):
    setup(store, capacity=1)
    join_many(store, 1)
    stale = store.journal(Q)
    store.admit(Q, T0)
    store.ack(Q, stale)
    assert [(c.seq, c.state) for c in store.journal(Q)] == [(1, EntryState.ADMITTED)]


def test_departures_are_numbered_in_order_and_drained_once(store):
    setup(store)
    join_many(store, 8)
    store.leave(Q, "u1", T0)  # departure 1, order 2
    store.revoke(Q, [4], T0)  # 2, order 4
    store.admit(Q, T0, limit=1)  # admission is not a departure
    store.revoke(Q, [1], T0)  # an admitted entry's revocation is not one either
    assert store.locate(Q, "u7", T0).counts.departed_total == 2
    drained = store.drain_departures(Q)
    assert (drained.orders, drained.first_number, drained.departed_total) == ((2.0, 4.0), 1, 2)
    empty = store.drain_departures(Q)
    assert (empty.orders, empty.departed_total) == ((), 2)

    store.leave(Q, "u6", T0)  # 3, order 7
    store.abandon(Q, seen_before=T0 + 1, now=T0 + 1)  # 4, 5, 6, 7: orders 3, 5, 6, 8 by seq
    located = store.locate(Q, "u6", T0 + 1)
    assert located.placement is None and located.counts.departed_total == 7
    drained = store.drain_departures(Q)
    assert drained.orders == (7.0, 3.0, 5.0, 6.0, 8.0)
    assert (drained.first_number, drained.departed_total) == (3, 7)
    assert store.drain_departures(Q).orders == ()


def test_closing_is_not_a_departure(store):
    setup(store)
    join_many(store, 3)
    store.leave(Q, "u0", T0)
    store.close(Q, T0)
    assert store.counts(Q, T0).departed_total == 1
    assert store.drain_departures(Q).orders == (1.0,)


def test_join_and_locate_read_the_counts_with_the_placement(store):
    setup(store, capacity=2)
    join_many(store, 6)
    store.admit(Q, T0 + 1)  # u0, u1
    store.leave(Q, "u2", T0 + 2)  # departure 1
    joined = store.join(Q, "new", T0 + 3)
    assert joined.placement.position == 4
    expected = Counts(
        QueueState.OPEN,
        waiting=4,
        active=2,
        admitted_total=2,
        flow=((T0 + 1, 2),),
        departed_total=1,
        joined_total=7,
        hold_exposure=4.0,  # two passes held for 2 s so far
    )
    assert joined.counts == expected == store.counts(Q, T0 + 3)
    located = store.locate(Q, "u4", T0 + 3)
    assert located.placement.position == 2
    assert located.counts == expected
    # A returning join and a lookup of nobody carry them too.
    assert store.join(Q, "u3", T0 + 3).counts == expected
    nobody = store.locate(Q, "nobody", T0 + 3)
    assert nobody.placement is None and nobody.counts == expected


def test_the_counts_measure_how_long_passes_are_held(store):
    setup(store, capacity=3, purchase_window=60, mode=QueueMode.AUTO)
    store.join(Q, "a", T0)  # admitted at once (auto mode)
    join_many(store, 4, T0)  # u0, u1 admitted at once; u2, u3 wait
    counts = store.counts(Q, T0 + 5)
    assert (counts.passes_ended, counts.hold_exposure) == (0, 15.0)  # 3 passes, 5 s each
    assert counts.ended_hold == 0
    store.release(Q, 1, T0 + 10)  # a: held 10 s
    store.revoke(Q, [2], T0 + 20)  # u0: 20 s
    store.admit(Q, T0 + 20)  # u2 and u3 take the slots
    store.expire(Q, T0 + 100)  # ended by this late expiry: u1 after 100 s, u2 and u3 after 80
    counts = store.counts(Q, T0 + 100)
    assert counts.passes_ended == 5
    assert counts.hold_exposure == pytest.approx(10 + 20 + 100 + 80 + 80)
    assert counts.ended_hold == pytest.approx(10 + 20 + 100 + 80 + 80)  # all ended
    # A rebuild of a queue the store still holds keeps measuring from there.
    store.join(Q, "b", T0 + 100)  # admitted at once: 0 s so far
    rebuild_as_held(store, T0 + 100)
    counts = store.counts(Q, T0 + 110)
    assert counts.passes_ended == 5
    assert counts.hold_exposure == pytest.approx(290 + 10)
    assert counts.ended_hold == pytest.approx(290)  # b is still held


def test_the_stock_the_site_gives_is_read_back_with_the_counts(store):
    setup(store)
    assert store.counts(Q, T0).stock is None  # unknown until the site says
    store.set_stock(Q, 40)
    assert store.counts(Q, T0).stock == 40
    assert store.join(Q, "u", T0).counts.stock == 40
    store.set_stock(Q, -3)  # an oversold count is nothing left
    assert store.counts(Q, T0).stock == 0
    rebuild_as_held(store, T0)
    assert store.counts(Q, T0).stock == 0  # kept while the store holds the queue
    store.set_stock(Q, None)
    assert store.counts(Q, T0).stock is None
    with pytest.raises(QueueUnavailable):
        store.set_stock("404", 1)


def test_a_position_agrees_with_the_admitted_total_read_with_it(store):
    """Admissions land while the last in line looks itself up: each answer's position plus
    the admitted total it came with is the same, as both come from one atomic step."""
    setup(store)
    n = 300
    join_many(store, n)
    done = threading.Event()

    def admit():
        try:
            for i in range(n - 1):
                store.admit(Q, T0 + i, limit=1)
                time.sleep(0)  # let the reader in between (MemoryStore is quick)
        finally:
            done.set()

    admitter = threading.Thread(target=admit)
    admitter.start()
    reads = 0
    while not done.is_set() or reads == 0:
        located = store.locate(Q, f"u{n - 1}", T0 + n)
        assert located.placement.position + located.counts.admitted_total == n
        reads += 1
    admitter.join()
    joined = store.join(Q, f"u{n - 1}", T0 + n)
    assert (joined.placement.position, joined.counts.admitted_total) == (1, n - 1)


def raw_flow(store):
    """The backend's whole sample history (what it keeps; the counts return a part)."""
    if isinstance(store, MemoryStore):
        return list(store._queues[Q].flow)
    samples = store.client.lrange(store._key(Q, "flow"), 0, -1)
    return [(float(t), int(n)) for t, n in (x.split("|") for x in samples)]


def test_counts_measure_outflow(store):
    setup(store)
    join_many(store, 30)
    store.admit(Q, T0, limit=5)
    store.admit(Q, T0 + 10, limit=5)
    counts = store.counts(Q, T0 + 10)
    assert counts.admitted_total == 10 and counts.active == 10 and counts.waiting == 20
    assert counts.flow == ((T0, 5), (T0 + 10, 10))
    assert measured_rate(counts.flow, T0 + 10, counts.admitted_total) == pytest.approx(0.5)
    # Samples that left the window are not returned; the one left measures nothing.
    assert store.counts(Q, T0 + 10 + FLOW_WINDOW).flow == ((T0 + 10, 10),)
    assert store.counts(Q, T0 + 11 + FLOW_WINDOW).flow == ()


def test_the_outflow_is_measured_over_the_busy_spell_only(store):
    """Samples are taken while people wait; when the line empties (by admission or by the last
    one leaving) they are forgotten, so an idle spell never slows the next spell's rate."""
    setup(store, capacity=2)
    join_many(store, 4)
    store.admit(Q, T0, limit=2)
    store.release(Q, 1, T0 + 10)
    store.release(Q, 2, T0 + 10)
    store.admit(Q, T0 + 10, limit=2)  # the line is empty now
    assert store.counts(Q, T0 + 10).flow == ()
    store.release(Q, 3, T0 + 20)
    store.release(Q, 4, T0 + 20)
    join_many(store, 3, now=T0 + 200, prefix="b")  # after an idle spell
    store.admit(Q, T0 + 200, limit=2)
    counts = store.counts(Q, T0 + 210)
    assert counts.flow == ((T0 + 200, 6),)  # the new spell only
    assert measured_rate(counts.flow, T0 + 210, counts.admitted_total) == 0
    store.leave(Q, "b2", T0 + 211)  # the last one waiting leaves: the spell ends
    assert store.counts(Q, T0 + 211).flow == ()


def test_the_trimmed_samples_give_the_rate_and_eta_of_the_whole_history(store):
    """The counts carry two samples, not the history: the rate (and so every ETA) measured
    from them equals the one measured from everything the store keeps, at any moment."""
    setup(store)
    join_many(store, 400)
    rng = random.Random(7)
    t = T0
    for _ in range(300):  # irregular admissions over ~ 40 minutes: more samples than kept
        t += rng.choice([0.25, 1.0, 4.999, 5.0, 7.5, 12.0, 40.0, 90.0])
        store.admit(Q, t, limit=1)
    history = raw_flow(store)
    assert len(history) == 64  # the store's own cap
    moments = [T0, t, t + 1, t + FLOW_WINDOW, t + FLOW_WINDOW + 1e-6, t + 2 * FLOW_WINDOW]
    for sample_time, _ in history:  # the window's edges, where a sample goes in or out
        edge = sample_time + FLOW_WINDOW
        moments += [edge, edge - 1e-6, edge + 1e-6, sample_time]
    moments += [rng.uniform(history[0][0] - 10, t + FLOW_WINDOW + 10) for _ in range(100)]
    measured = 0
    for now in moments:
        counts = store.counts(Q, now)
        full = measured_rate(history, now, counts.admitted_total)
        assert counts.flow == flow_in_window(history, now)
        rate = measured_rate(counts.flow, now, counts.admitted_total)
        assert rate == full
        assert store.locate(Q, "u399", now).counts.flow == counts.flow
        for position in (1, 7, 100):
            assert estimate_eta(position, rate, 0.1) == estimate_eta(position, full, 0.1)
        measured += full is not None
    assert measured > 50  # the comparison covered real rates, not only "too little history"


# -- rebuild ------------------------------------------------------------------------------


def test_rebuild_restores_order_passes_and_counters(store):
    config = QueueConfig(mode=QueueMode.ALWAYS, capacity=3, purchase_window=60)
    store.rebuild(
        Q,
        config,
        waiting=[WaitingRecord(5, "e", 2.0, T0), WaitingRecord(9, "f", 1.0, T0)],
        active=[ActiveRecord(3, "c", T0, T0 + 60, 4)],
        next_seq=9,
        admitted_total=4,
        now=T0,
    )
    dump = store.dump(Q)
    assert [w.seq for w in dump.waiting] == [9, 5]
    assert [(a.seq, a.expires_at) for a in dump.active] == [(3, pytest.approx(T0 + 60))]
    assert (dump.next_seq, dump.admitted_total) == (9, 4)
    assert store.locate(Q, "e", T0).placement.position == 2
    assert store.join(Q, "f", T0).placement.seq == 9
    assert store.join(Q, "new", T0).placement.seq == 10
    assert store.pass_active(Q, 3, T0)
    assert store.journal(Q)[0].seq == 10
    # Numbering goes on from the rows.
    assert [(a.seq, a.number) for a in store.admit(Q, T0, limit=1)] == [(9, 5)]
    # Departures are numbered from higher than a lost queue could have numbered them.
    assert store.counts(Q, T0).departed_total == departed_total_after_loss(T0) == T0 * 1e6


def test_rebuild_keeps_the_departure_numbers_while_the_queue_is_held(store):
    setup(store)
    join_many(store, 5)
    store.leave(Q, "u0", T0)
    store.drain_departures(Q)
    store.leave(Q, "u1", T0)  # not drained yet
    before = store.dump(Q)
    rebuild = {
        "waiting": before.waiting,
        "active": before.active,
        "next_seq": before.next_seq,
        "admitted_total": before.admitted_total,
        "now": T0,
    }
    store.rebuild(Q, before.config, **rebuild)
    assert store.counts(Q, T0).departed_total == 2
    store.leave(Q, "u2", T0)
    drained = store.drain_departures(Q)
    assert (drained.orders, drained.first_number) == ((2.0, 3.0), 2)
    # A queue the store lost numbers on from above anything it handed out before.
    store.delete(Q)
    store.rebuild(Q, before.config, **{**rebuild, "now": T0 + 60})
    assert store.counts(Q, T0).departed_total == departed_total_after_loss(T0 + 60)
    assert store.drain_departures(Q).orders == ()
    store.leave(Q, "u3", T0 + 60)
    assert store.drain_departures(Q).first_number == departed_total_after_loss(T0 + 60) + 1


def test_dump_round_trips_through_rebuild(store):
    setup(store, capacity=2)
    join_many(store, 6)
    store.admit(Q, T0)
    store.leave(Q, "u3", T0)
    before = store.dump(Q)
    store.delete(Q)
    assert not store.is_loaded(Q)
    store.rebuild(
        Q,
        before.config,
        waiting=before.waiting,
        active=before.active,
        next_seq=before.next_seq,
        admitted_total=before.admitted_total,
        now=T0,
    )
    assert store.dump(Q) == before


# -- locks --------------------------------------------------------------------------------


def test_lock_has_one_owner_at_a_time(store):
    assert store.acquire_lock("tick:7", "a", 30)
    assert not store.acquire_lock("tick:7", "b", 30)
    assert store.acquire_lock("tick:7", "a", 30)  # renew
    store.release_lock("tick:7", "b")  # not the owner: no effect
    assert not store.acquire_lock("tick:7", "b", 30)
    store.release_lock("tick:7", "a")
    assert store.acquire_lock("tick:7", "b", 30)


def test_locate_many_is_locate_for_each(store):
    setup(store, capacity=2)
    join_many(store, 5)
    store.admit(Q, T0 + 1)  # u0, u1
    store.leave(Q, "u3", T0 + 2)
    names = ["u4", "u0", "nobody", "u3", "u2"]
    assert store.locate_many(Q, names, T0 + 3) == [store.locate(Q, n, T0 + 3) for n in names]
    assert store.locate_many(Q, [], T0 + 3) == []
    with pytest.raises(QueueUnavailable):
        store.locate_many("never-loaded", ["u0"], T0)


def test_touch_many_is_touch_for_each(store):
    setup(store, capacity=1)
    join_many(store, 3)
    store.admit(Q, T0 + 1)  # u0 admitted: live, and touching it is no error
    store.leave(Q, "u2", T0 + 2)
    assert store.touch_many(Q, ["u1", "u0", "u2", "nobody"], T0 + 100) == [
        True,
        True,
        False,
        False,
    ]
    # u1 was seen at T0 + 100: an abandonment cut-off before that spares it.
    assert store.touch_many(Q, [], T0) == []
    with pytest.raises(QueueUnavailable):
        store.touch_many("never-loaded", ["u0"], T0)
