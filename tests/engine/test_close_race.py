"""A hypothesis state machine over the services, the rows and the configured store: joins
whose row lands late, ticks, the sold-out close and the cleanup, in any order. A join is
split where a real one can be overtaken: its store step, then its row write."""

import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ticketqueue import retention, rows, services
from ticketqueue.core import QueueClosed
from ticketqueue.models import Entry, Queue
from ticketqueue.store import get_store

pytestmark = pytest.mark.django_db

T0 = 1_800_000_000.0
PEOPLE = [f"user:{i}" for i in range(10)]
_queues = itertools.count(1)


class CloseRacingJoin(RuleBasedStateMachine):
    @initialize(capacity=st.integers(1, 3))
    def open_a_sale(self, capacity):
        self.now = T0
        self.queue = Queue.objects.create(
            slug=f"race-{next(_queues)}", name="Race", mode="always", capacity=capacity
        )
        services.configure(self.queue, self.now)
        self.in_flight = []  # (placement, joined at): store step done, row not yet written
        self.settled = True  # a cleanup ran since the last row landed

    @rule(who=st.sampled_from(PEOPLE))
    def join_store_step(self, who):
        try:
            joined = get_store().join(self.queue.store_id, who, self.now)
        except QueueClosed:
            return
        if joined.placement.created:
            self.in_flight.append((joined.placement, self.now))

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def row_lands(self, data):
        placement, at = self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))
        rows.create_entry(self.queue, placement, at)
        self.settled = False

    @rule()
    def tick(self):
        self.queue.refresh_from_db()
        services.tick(self.queue, self.now)

    @precondition(lambda self: self.queue.state != Queue.State.CLOSED)
    @rule()
    def close(self):
        services.close(self.queue, self.now)

    @precondition(lambda self: self.queue.state != Queue.State.CLOSED)
    @rule(who=st.sampled_from(PEOPLE))
    def close_overtaking_a_join(self, who):
        """The close copies the journal, a join's store step gets in, the close turns the
        line away: the join's row can only land after the close."""
        real_sync = services.sync_journal

        def sync_then_a_join(queue):
            services.sync_journal = real_sync
            changes = real_sync(queue)
            self.join_store_step(who)
            return changes

        services.sync_journal = sync_then_a_join
        try:
            services.close(self.queue, self.now)
        finally:
            services.sync_journal = real_sync

    @rule()
    def cleanup(self):
        retention.cleanup(self.now)
        self.settled = not self.in_flight

    @rule(seconds=st.integers(1, 30))
    def advance(self, seconds):
        self.now += seconds

    @invariant()
    def a_settled_row_never_waits_alone(self):
        """Once the rows in flight landed and a cleanup ran, every row still marked waiting
        is waiting in the store: nobody is left in a line that no longer holds them."""
        if not hasattr(self, "queue") or not self.settled:
            return
        waiting_rows = set(
            Entry.objects.filter(queue=self.queue, state="waiting").values_list("seq", flat=True)
        )
        in_store = {w.seq for w in get_store().dump(self.queue.store_id).waiting}
        assert waiting_rows <= in_store


def test_a_join_racing_the_close_never_leaves_a_row_waiting_alone(live_store):
    run_state_machine_as_test(
        CloseRacingJoin,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
