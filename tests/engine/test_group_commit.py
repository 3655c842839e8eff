"""New visitors' rows under concurrency: joins that wait at the same moment share one INSERT
and one commit, and still each join answers only once its own row is committed."""

import threading
import time

import pytest
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    connection,
    connections,
    transaction,
)

from ticketqueue import rows, services
from ticketqueue.core import GroupCommit
from ticketqueue.models import Queue

from .conftest import committed_entries

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_800_000_000.0
WAIT = 20
FOLLOWERS = 12


class HeldFirstWrite:
    """Wraps the real row writer: the first write waits until ``FOLLOWERS`` joins have queued
    behind it, so the batch the test asserts on is certain rather than likely."""

    def __init__(self, monkeypatch, fail_batches=False):
        self.insert = rows.insert_entries
        self.group = GroupCommit(lambda rows: self._write(rows))
        self.batches: list[list[str]] = []
        self.fail_batches = fail_batches
        monkeypatch.setattr(rows, "grouped_inserts", self.group)

    def _write(self, rows):
        first = not self.batches
        self.batches.append([row["identity"] for row in rows])
        if first:
            deadline = time.monotonic() + WAIT
            while self.group.queued < FOLLOWERS:
                assert time.monotonic() < deadline, "the followers never queued"
                time.sleep(0.002)
        elif self.fail_batches:
            raise DatabaseError("the database went away")
        self.insert(rows)


def committed_identities(queue):
    return {identity for (identity,) in committed_entries(queue, "identity")}


def join_all(queue, identities, held):
    """Each identity joins from its own thread, the first alone until its write has begun;
    returns identity -> what the join saw when it returned."""
    outcomes = {}

    def run(identity):
        try:
            status = services.join(queue, identity, T0)
            outcomes[identity] = ("joined", status.seq, identity in committed_identities(queue))
        except Exception as exc:  # noqa: BLE001 - asserted by the test
            outcomes[identity] = ("raised", exc)
        finally:
            connection.close()

    first = threading.Thread(target=run, args=(identities[0],))
    first.start()
    deadline = time.monotonic() + WAIT
    while not held.batches:
        assert time.monotonic() < deadline, "the first join never wrote"
        time.sleep(0.001)
    threads = [threading.Thread(target=run, args=(i,)) for i in identities[1:]]
    for thread in threads:
        thread.start()
    for thread in [first, *threads]:
        thread.join(WAIT)
    return outcomes


@pytest.fixture
def queue(live_store):
    if connection.vendor == "sqlite":
        # Its shared cache refuses a read while another connection writes the table, and
        # these tests read from other connections while joins write.
        pytest.skip("the test database is in-memory SQLite")
    queue = Queue.objects.create(slug="burst", name="Burst", mode="always")
    services.configure(queue, T0)
    return queue


def test_joins_waiting_together_share_one_commit_and_answer_once_committed(queue, monkeypatch):
    held = HeldFirstWrite(monkeypatch)
    identities = [f"user:{i}" for i in range(FOLLOWERS + 1)]
    outcomes = join_all(queue, identities, held)

    # Two statements for thirteen new visitors: the first alone, the twelve behind it together.
    assert held.batches[0] == [identities[0]]
    assert sorted(held.batches[1]) == sorted(identities[1:]) and len(held.batches) == 2
    # Every join saw its own row committed (from another connection) when it returned.
    assert {i: o[0] for i, o in outcomes.items()} == dict.fromkeys(identities, "joined")
    assert all(seen for _, _, seen in outcomes.values())
    assert committed_identities(queue) == set(identities)
    # One row per seq, each with the seq its join answered with.
    assert dict(queue.entries.values_list("identity", "seq")) == {
        i: outcomes[i][1] for i in identities
    }


def test_every_join_of_a_failed_batch_fails_and_keeps_no_place(queue, monkeypatch, live_store):
    held = HeldFirstWrite(monkeypatch, fail_batches=True)
    identities = [f"user:{i}" for i in range(FOLLOWERS + 1)]
    outcomes = join_all(queue, identities, held)

    assert outcomes[identities[0]][0] == "joined"
    failed = identities[1:]
    assert sorted(held.batches[1]) == sorted(failed)
    for identity in failed:
        kind, error = outcomes[identity]
        assert kind == "raised" and isinstance(error, DatabaseError)
        # Not acknowledged, so not kept: no place in the store, no row.
        assert live_store.locate(queue.store_id, identity, T0).placement is None
    assert committed_identities(queue) == {identities[0]}
    assert live_store.counts(queue.store_id, T0).waiting == 1


def test_a_join_inside_the_callers_transaction_writes_in_that_transaction(queue, monkeypatch):
    def shared_writer_must_not_be_used(values):
        raise AssertionError("a row inside a transaction went to the shared writer")

    monkeypatch.setattr(rows.grouped_inserts, "submit", shared_writer_must_not_be_used)
    with transaction.atomic():
        services.join(queue, "user:1", T0)
        assert queue.entries.filter(identity="user:1").exists()
        assert committed_identities(queue) == set()  # the caller's commit decides
    assert committed_identities(queue) == {"user:1"}


def waiting_for_a_lock():
    """How many of the test database's connections wait for a lock, seen from another one
    (a fresh statistics snapshot for each look)."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0]
    finally:
        other.close()


def entry_row(queue, change):
    """The row a join's group commit writes for this change."""
    return {
        "queue": queue.pk,
        "identity": change.identity,
        "seq": change.seq,
        "order": change.order,
        "state": change.state.value,
        "joined_at": connection.ops.adapt_datetimefield_value(rows.as_datetime(change.at)),
        "admitted_at": None,
        "pass_expires_at": None,
        "admission_number": None,
    }


@pytest.mark.parametrize("waiter", ["group commit", "journal sync"])
def test_a_group_commit_and_a_journal_sync_of_the_same_rows_do_not_deadlock(
    queue, live_store, waiter
):
    # Two joins whose rows are not written yet: a tick's journal sync may write them while
    # their group commit does. Each writer below is handed them last seq first.
    for identity in ("user:1", "user:2"):
        live_store.join(queue.store_id, identity, T0)
    first, second = sorted(live_store.journal(queue.store_id, limit=10), key=lambda c: c.seq)
    errors = []

    def write_both():
        try:
            if waiter == "group commit":
                rows.insert_entries([entry_row(queue, second), entry_row(queue, first)])
            else:
                services._sync(queue, [second, first])
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            connection.close()

    # The other writer holds the first row uncommitted, then writes the second once this one
    # waits: had this one written the second row before waiting on the first, each would now
    # wait for the other's transaction.
    with transaction.atomic():
        if waiter == "group commit":
            services._sync(queue, [first])
        else:
            rows.insert_entries([entry_row(queue, first)])
        thread = threading.Thread(target=write_both)
        thread.start()
        deadline = time.monotonic() + WAIT
        while not waiting_for_a_lock():
            assert time.monotonic() < deadline, "the second writer never waited"
            time.sleep(0.01)
        if waiter == "group commit":
            services._sync(queue, [second])
        else:
            rows.insert_entries([entry_row(queue, second)])
    thread.join(WAIT)

    assert errors == []
    assert committed_entries(queue, "seq", "identity") == [(1, "user:1"), (2, "user:2")]


def test_a_batch_tells_apart_each_row_it_could_not_write(queue, live_store):
    # Three joins' rows in one statement: one a journal sync wrote first (the same row), one
    # whose seq a different row holds (the store handed it out again after losing it), one new.
    for identity in ("user:1", "user:2", "user:3"):
        live_store.join(queue.store_id, identity, T0)
    first, second, third = sorted(live_store.journal(queue.store_id, limit=10), key=lambda c: c.seq)
    services._sync(queue, [first])
    assert rows.insert_entries([{**entry_row(queue, second), "identity": "user:9"}]) == {}

    refused = rows.insert_entries(
        [entry_row(queue, third), entry_row(queue, second), entry_row(queue, first)]
    )

    assert list(refused) == [1] and isinstance(refused[1], IntegrityError)
    assert committed_entries(queue, "seq", "identity") == [
        (1, "user:1"),
        (2, "user:9"),
        (3, "user:3"),
    ]
