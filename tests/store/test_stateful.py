"""A hypothesis state machine drives a store with random operations and compares it, after
every step, with a plain model of the waiting room: order, positions, capacity, exactly once."""

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ticketqueue.core import (
    FLOW_WINDOW,
    EntryState,
    QueueClosed,
    QueueFull,
    QueueMode,
    QueueState,
    priority_order,
)
from ticketqueue.store import QueueConfig
from ticketqueue.store.memory import MemoryStore

from ..conftest import drop_store, make_cluster_store, make_redis_store

Q = "1"
T0 = 1_800_000_000.0
PEOPLE = [f"p{i}" for i in range(12)]


class WaitingRoom(RuleBasedStateMachine):
    """The model: a list for the line, a dict for the passes. Nothing clever."""

    make_store = staticmethod(MemoryStore)

    def __init__(self):
        super().__init__()
        self.store = self.make_store()
        self.now = T0
        self.line: list[tuple[int, str]] = []  # (seq, identity), head first
        self.priority: dict[int, int] = {}  # seq -> its priority group (0: the public)
        self.active: dict[int, tuple[str, float]] = {}  # seq -> (identity, expires_at)
        self.next_seq = 0
        self.closed = False
        self.admitted_ever: list[int] = []
        self.departed: list[float] = []  # orders of departures not yet drained
        self.departed_total = 0

    def teardown(self):
        drop_store(self.store)

    @initialize(
        capacity=st.integers(1, 4),
        window=st.integers(5, 30),
        max_size=st.one_of(st.none(), st.integers(3, 8)),
        mode=st.sampled_from([QueueMode.ALWAYS, QueueMode.AUTO]),
    )
    def configure(self, capacity, window, max_size, mode):
        self.capacity, self.window, self.max_size, self.mode = capacity, window, max_size, mode
        self.store.configure(
            Q,
            QueueConfig(mode=mode, capacity=capacity, max_size=max_size, purchase_window=window),
            self.now,
        )

    # -- helpers --------------------------------------------------------------------------
    def live_identities(self):
        return {who for _, who in self.line} | {who for who, _ in self.active.values()}

    def model_admit(self, seq, who):
        self.active[seq] = (who, self.now + self.window)
        self.admitted_ever.append(seq)

    def model_depart(self, seq):
        self.line = [(s, w) for s, w in self.line if s != seq]
        # No pre-queue draw here: the order is the seq in its priority's band.
        self.departed.append(priority_order(seq, self.priority[seq]))
        self.departed_total += 1

    def model_counts(self):
        """What the model says the counts are (the flow samples are the store's own)."""
        return (
            QueueState.CLOSED if self.closed else QueueState.OPEN,
            len(self.line),
            len(self.active),
            len(self.admitted_ever),
            self.departed_total,
        )

    # -- rules ----------------------------------------------------------------------------
    @rule(who=st.sampled_from(PEOPLE), priority=st.sampled_from([0, 0, 0, 1, 2]))
    def join(self, who, priority):
        if who in self.live_identities():
            joined = self.store.join(Q, who, self.now, priority)
            assert not joined.placement.created
            assert joined.counts == self.store.counts(Q, self.now)
            return
        if self.closed:
            with pytest.raises(QueueClosed):
                self.store.join(Q, who, self.now)
            return
        if self.max_size is not None and len(self.line) >= self.max_size:
            with pytest.raises(QueueFull):
                self.store.join(Q, who, self.now)
            return
        joined = self.store.join(Q, who, self.now, priority)
        placement = joined.placement
        self.next_seq += 1
        assert placement.created and placement.seq == self.next_seq
        self.priority[placement.seq] = priority
        # Auto mode admits at once only while nobody waits and there is room. The rate is
        # unlimited here, so the bucket never refuses.
        if self.mode is QueueMode.AUTO and not self.line and len(self.active) < self.capacity:
            assert placement.state is EntryState.ADMITTED
            self.model_admit(placement.seq, who)
        else:
            assert placement.state is EntryState.WAITING
            # Behind everyone of its own group or a higher one, ahead of lower groups.
            at = sum(1 for seq, _ in self.line if self.priority[seq] >= priority)
            self.line.insert(at, (placement.seq, who))
            assert placement.position == at + 1
        # The counts came from the same atomic step as the placement.
        assert joined.counts == self.store.counts(Q, self.now)
        c = joined.counts
        assert (c.state, c.waiting, c.active, c.admitted_total, c.departed_total) == (
            self.model_counts()
        )

    @rule(who=st.sampled_from(PEOPLE))
    def leave(self, who):
        change = self.store.leave(Q, who, self.now)
        waiting = [seq for seq, w in self.line if w == who]
        if not waiting:
            assert change is None
            return
        assert change.seq == waiting[0] and change.state is EntryState.LEFT
        self.model_depart(change.seq)

    @rule(seconds=st.integers(0, 20))
    def advance(self, seconds):
        self.now += seconds

    @rule()
    def tick(self):
        expired = self.store.expire(Q, self.now)
        due = sorted(seq for seq, (_, exp) in self.active.items() if exp <= self.now)
        assert sorted(c.seq for c in expired) == due
        for seq in due:
            del self.active[seq]
        admitted = self.store.admit(Q, self.now)
        room = 0 if self.closed else self.capacity - len(self.active)
        expected = self.line[: max(0, room)]
        assert [(a.seq, a.identity) for a in admitted] == expected
        self.line = self.line[len(expected) :]
        for seq, who in expected:
            self.model_admit(seq, who)

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def release(self, data):
        seq = data.draw(st.sampled_from(sorted(self.active)))
        change = self.store.release(Q, seq, self.now)
        expired = self.active[seq][1] <= self.now
        # A pass past its expiry but not yet expired by a tick can still be released.
        assert change is not None and change.state is EntryState.COMPLETED, expired
        del self.active[seq]
        assert self.store.release(Q, seq, self.now) is None

    @rule(seq=st.integers(1, 30))
    def revoke(self, seq):
        changes = self.store.revoke(Q, [seq], self.now)
        waiting = any(s == seq for s, _ in self.line)
        assert len(changes) == (1 if seq in self.active or waiting else 0)
        self.active.pop(seq, None)
        if waiting:
            self.model_depart(seq)

    @rule()
    def drain_departures(self):
        drained = self.store.drain_departures(Q)
        # In the order they left, numbered on from the last drain.
        assert drained.orders == tuple(self.departed)
        assert drained.departed_total == self.departed_total
        assert drained.first_number == self.departed_total - len(self.departed) + 1
        self.departed = []

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self):
        assert self.store.close(Q, self.now) == len(self.line)
        self.line = []
        self.closed = True

    # -- the guarantees, after every step -------------------------------------------------
    @invariant()
    def same_line_and_exact_positions(self):
        dump = self.store.dump(Q)
        assert [(w.seq, w.identity) for w in dump.waiting] == self.line
        for index, (seq, who) in enumerate(self.line, start=1):
            assert self.store.position(Q, seq) == index
            located = self.store.locate(Q, who, self.now)
            assert located.placement.position == index
            assert located.counts == self.store.counts(Q, self.now)

    @invariant()
    def capacity_is_never_exceeded(self):
        counts = self.store.counts(Q, self.now)
        assert counts.active == len(self.active) <= self.capacity
        assert counts.waiting == len(self.line)

    @invariant()
    def one_entry_per_identity_and_one_admission_per_entry(self):
        dump = self.store.dump(Q)
        identities = [w.identity for w in dump.waiting] + [a.identity for a in dump.active]
        assert len(identities) == len(set(identities))
        assert len(self.admitted_ever) == len(set(self.admitted_ever))
        assert self.store.counts(Q, self.now).admitted_total == len(self.admitted_ever)

    @invariant()
    def counts_agree_with_the_model(self):
        c = self.store.counts(Q, self.now)
        assert (c.state, c.waiting, c.active, c.admitted_total, c.departed_total) == (
            self.model_counts()
        )
        # The flow samples are those the rate at now needs: at most two, oldest first.
        assert len(c.flow) <= 2 and list(c.flow) == sorted(c.flow)
        assert all(self.now - t <= FLOW_WINDOW for t, _ in c.flow)

    @invariant()
    def admissions_follow_join_order(self):
        """First come, first served within each priority group (the tick rule checks that the
        groups go in their order: the admitted are the head of the model's line)."""
        for group in set(self.priority.values()):
            mine = [seq for seq in self.admitted_ever if self.priority[seq] == group]
            assert mine == sorted(mine)


class RedisWaitingRoom(WaitingRoom):
    make_store = staticmethod(make_redis_store)


class ClusterWaitingRoom(WaitingRoom):
    make_store = staticmethod(make_cluster_store)


_settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMemoryStoreMachine = WaitingRoom.TestCase
TestMemoryStoreMachine.settings = _settings
TestRedisStoreMachine = RedisWaitingRoom.TestCase
TestRedisStoreMachine.settings = _settings
TestClusterStoreMachine = pytest.mark.skipif(
    os.environ.get("TICKETQUEUE_TEST_STORE") == "memory", reason="embedded run"
)(ClusterWaitingRoom.TestCase)
TestClusterStoreMachine.settings = _settings
