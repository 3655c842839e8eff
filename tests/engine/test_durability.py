"""Losing the store loses nothing: the rows rebuild the same line, order and passes."""

from datetime import UTC, datetime

import pytest
from django.db import DatabaseError

from ticketqueue import passes, rows, services
from ticketqueue.models import Queue
from ticketqueue.store import get_store, reset_store

from .conftest import committed_entries

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_800_000_000.0


@pytest.fixture
def lose_store(settings):
    """A function that wipes the hot state the way a Redis FLUSHDB or restart would, for this
    run's keys only (the Redis is shared: other runs' keys and a Celery broker stay)."""
    backend = settings.TICKETQUEUE["STORE"]
    reset_store()

    def lose():
        store = get_store()
        if backend.endswith("RedisStore"):
            for key in store.client.scan_iter(match=f"{store.prefix}:*", count=1000):
                store.client.unlink(key)
        else:
            reset_store()  # a new process: the in-memory line is gone

    yield lose
    lose()
    reset_store()


def snapshot(queue):
    dump = get_store().dump(queue.store_id)
    return (
        [(w.seq, w.identity, w.order) for w in dump.waiting],
        [(a.seq, a.identity, int(a.expires_at), a.admission_number) for a in dump.active],
        dump.next_seq,
        dump.admitted_total,
    )


def test_rebuild_after_flush_restores_entries_order_and_passes(lose_store):
    queue = Queue.objects.create(slug="d", name="D", mode="always", capacity=3, purchase_window=300)
    services.configure(queue, T0)
    for i in range(10):
        services.join(queue, f"user:{i}", T0 + i)
    services.leave(queue, "user:4", T0 + 11)
    granted = services.tick(queue, T0 + 12).passes
    before = snapshot(queue)
    assert len(before[0]) == 6 and len(before[1]) == 3

    lose_store()
    assert not get_store().is_loaded(queue.store_id)
    assert services.rebuild(queue, T0 + 13) == 9
    assert snapshot(queue) == before

    # The passes issued before the loss still open the gate; positions are unchanged.
    for _admission, token in granted:
        claims = passes.verify(token, queue_id=queue.store_id, now=T0 + 14)
        assert get_store().pass_active(queue.store_id, claims.seq, T0 + 14)
    assert services.status(queue, "user:9", T0 + 14).position == 6
    # Numbering and sequences go on where they were.
    assert services.join(queue, "user:new", T0 + 15).seq == 11
    assert [a.number for a in services.tick(queue, T0 + 400).admitted] == [4, 5, 6]


def test_the_next_operation_rebuilds_a_lost_queue_by_itself(lose_store):
    queue = Queue.objects.create(slug="e", name="E", mode="always", capacity=1)
    services.configure(queue, T0)
    first = services.join(queue, "user:1", T0)
    second = services.join(queue, "user:2", T0)
    lose_store()
    # No operator needed: the join finds the queue missing and rebuilds it from the rows.
    again = services.join(queue, "user:2", T0 + 1)
    assert (again.seq, again.position) == (second.seq, 2)
    assert services.status(queue, "user:1", T0 + 1).seq == first.seq
    assert [a.seq for a in services.tick(queue, T0 + 2).admitted] == [first.seq]


def test_unsynced_changes_are_written_before_a_rebuild(live_store):
    queue = Queue.objects.create(slug="f", name="F", mode="always", capacity=2)
    services.configure(queue, T0)
    for i in range(4):
        services.join(queue, f"user:{i}", T0)
    # A worker admits in the store and dies before writing the rows ...
    live_store.admit(queue.store_id, T0 + 1)
    before = snapshot(queue)
    # ... an operator rebuilds: the journal is written first, so the passes survive.
    services.rebuild(queue, T0 + 2)
    assert snapshot(queue) == before
    assert queue.entries.filter(state="admitted").count() == 2


def test_a_new_entry_is_committed_when_the_join_returns(live_store):
    queue = Queue.objects.create(slug="g", name="G", mode="always")
    services.configure(queue, T0)
    waiting = services.join(queue, "user:1", T0)
    assert waiting.state == "waiting"
    # Another connection sees the row at once: no transaction is left open behind the answer.
    assert committed_entries(queue, "identity", "seq", "state") == [
        ("user:1", waiting.seq, "waiting")
    ]
    assert queue.entries.get().joined_at == datetime.fromtimestamp(T0, UTC)


def test_a_join_whose_row_the_journal_sync_wrote_first_still_answers(live_store, monkeypatch):
    queue = Queue.objects.create(slug="h", name="H", mode="off", capacity=5)
    services.configure(queue, T0)
    insert = rows.insert_entries

    def tick_first(rows):
        services.sync_journal(queue)  # a tick's journal sync between the store and the row
        insert(rows)

    monkeypatch.setattr(rows, "insert_entries", tick_first)
    admitted = services.join(queue, "user:1", T0)
    assert admitted.state == "admitted" and admitted.pass_token
    entry = queue.entries.get()
    assert (entry.identity, entry.seq, entry.state) == ("user:1", admitted.seq, "admitted")
    assert list(queue.admissions.values_list("seq", "number")) == [(admitted.seq, 1)]


@pytest.mark.parametrize("mode", ["always", "off"])
def test_a_join_whose_row_cannot_be_written_is_not_kept(live_store, monkeypatch, mode):
    queue = Queue.objects.create(slug=f"i-{mode}", name="I", mode=mode, capacity=5)
    services.configure(queue, T0)

    def fail(rows):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(rows, "insert_entries", fail)
    with pytest.raises(DatabaseError):
        services.join(queue, "user:1", T0)
    # Not acknowledged, so nowhere: no row, no place in the store, no pass counted.
    assert not queue.entries.exists() and not queue.admissions.exists()
    assert live_store.locate(queue.store_id, "user:1", T0).placement is None
    counts = live_store.counts(queue.store_id, T0)
    assert (counts.waiting, counts.active) == (0, 0)
