"""The guarantees under concurrency, on the configured store and database (real Redis and
PostgreSQL by default): 50 joiners and 4 tickers on one queue at once."""

import contextlib
import random
import threading
import time

import pytest
from django.db import connection

from ticketqueue import services
from ticketqueue.core import PassNotActive
from ticketqueue.models import Admission, Entry, Queue

pytestmark = pytest.mark.django_db(transaction=True)

JOINERS = 50
TICKERS = 4
CAPACITY = 5


stop = threading.Event()


def run_threads(targets):
    errors = []

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # surfaced below, so a thread cannot fail silently
                errors.append(exc)
                stop.set()
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=guard(fn)) for fn in targets]
    for t in threads:
        t.start()
    return threads, errors


def test_fifo_capacity_and_exactly_once_under_concurrency(live_store):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; this test is for the production database")
    queue = Queue.objects.create(
        slug="rush", name="Rush", mode="always", capacity=CAPACITY, purchase_window=600
    )
    services.configure(queue)
    qid = queue.store_id
    start = threading.Barrier(JOINERS + TICKERS + 2)
    done = stop
    stop.clear()
    samples = []
    acks = {}
    retried = set()  # the seqs whose retry is done: their buyers may finish

    def joiner(i):
        def run():
            start.wait()
            time.sleep(random.random() * 0.05)
            status = services.join(queue, f"user:{i}")
            # A retry from another tab of the same identity must not create a second entry.
            again = services.join(queue, f"user:{i}")
            assert again.seq == status.seq
            acks[i] = status.seq
            retried.add(status.seq)

        return run

    def ticker():
        start.wait()
        while not done.is_set():
            services.tick(queue)
            # Buyers finish quickly, so every slot turns over many times, whoever admitted
            # them (a tick, or a release letting the next one in); but not before their
            # retry, which after the release would rightly be a new entry at the back.
            for held in live_store.passes(qid):
                if held.seq in retried:
                    # Another buyer thread may have finished this one first.
                    with contextlib.suppress(PassNotActive):
                        services.release_entry(queue, held.seq)
            time.sleep(random.random() * 0.005)

    def sampler():
        start.wait()
        while not done.is_set():
            samples.append(live_store.counts(qid, time.time()).active)

    def finisher():
        start.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not done.is_set():
            counts = live_store.counts(qid, time.time())
            if len(acks) == JOINERS and counts.waiting == 0 and counts.active == 0:
                break
            time.sleep(0.01)
        done.set()

    targets = [joiner(i) for i in range(JOINERS)]
    targets += [ticker] * TICKERS + [sampler, finisher]
    threads, errors = run_threads(targets)
    for t in threads:
        t.join(timeout=90)
    assert not errors, errors
    services.sync_journal(queue)

    # Exactly once: one entry per identity, one admission per entry.
    assert len(acks) == JOINERS and len(set(acks.values())) == JOINERS
    entries = list(Entry.objects.filter(queue=queue).values_list("identity", "seq", "state"))
    assert len(entries) == JOINERS
    assert len({identity for identity, _, _ in entries}) == JOINERS
    assert {state for _, _, state in entries} == {"completed"}
    log = list(
        Admission.objects.filter(queue=queue).order_by("number").values_list("seq", "number")
    )
    assert [number for _, number in log] == list(range(1, JOINERS + 1))
    # FIFO: the n-th admission went to the n-th join.
    assert [seq for seq, _ in log] == sorted(acks.values())
    # Capacity: never more active passes than allowed, at any sampled instant.
    assert samples and max(samples) <= CAPACITY
