"""New visitors' rows under concurrency: joins that wait at the same moment share one INSERT
and one commit, and still each join answers only once its own row is committed."""

import threading
import time

import pytest
from django.db import DatabaseError, connection, transaction

from ticketqueue import services
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
        self.insert = services._insert_entries
        self.group = GroupCommit(lambda rows: self._write(rows))
        self.batches: list[list[str]] = []
        self.fail_batches = fail_batches
        monkeypatch.setattr(services, "_new_rows", self.group)

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

    monkeypatch.setattr(services._new_rows, "submit", shared_writer_must_not_be_used)
    with transaction.atomic():
        services.join(queue, "user:1", T0)
        assert queue.entries.filter(identity="user:1").exists()
        assert committed_identities(queue) == set()  # the caller's commit decides
    assert committed_identities(queue) == {"user:1"}
