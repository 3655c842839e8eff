"""The tick loop on the configured store and database: batches, leases, fencing, samples,
cleanup. Time is the injected clock; batches are paced by a fake sleep that moves it."""

from datetime import UTC, datetime

import pytest

from ticketqueue import retention, rows, services, signals, ticker
from ticketqueue.models import Admission, Entry, Queue, QueueSample

from .conftest import T0

pytestmark = pytest.mark.django_db


def join_many(queue, n, start=0):
    return [services.join(queue, f"anon:{i}").seq for i in range(start, start + n)]


def states(queue):
    return dict(Entry.objects.filter(queue=queue).values_list("seq", "state"))


def test_tick_admits_by_the_policy_and_writes_rows(make_queue, fake_pacing):
    queue = make_queue(mode="always", capacity=3, purchase_window=60)
    seqs = join_many(queue, 5)
    report = ticker.run_tick(batches=1, **fake_pacing)
    assert report.admitted == 3 and not report.skipped
    (done,) = report.ticked
    assert (done.slug, done.batches, done.admitted, done.fenced) == ("sale", 1, 3, False)
    assert [s for s, st in sorted(states(queue).items()) if st == "admitted"] == seqs[:3]
    # The passes expire; the next tick frees their slots and admits the rest.
    fake_pacing["timer"].advance(61)
    report = ticker.run_tick(batches=1, **fake_pacing)
    assert report.ticked[0].expired == 3 and report.admitted == 2
    assert list(Admission.objects.filter(queue=queue).order_by("number").values_list("seq")) == [
        (s,) for s in seqs
    ]


def paced_tick(make_queue, fake_pacing, during_round=None):
    """80/s in 8 rounds a second: 10 every 125 ms (times and tokens exact in binary), after a
    first tick has emptied the bucket's initial burst. Returns the report and the rounds as
    (seconds into the tick, admitted)."""
    queue = make_queue(mode="always", rate_per_minute=4800)
    join_many(queue, 400)
    ticker.run_tick(batches=1, **fake_pacing)
    batches = []

    def count(sender, queue, admissions, **kwargs):
        batches.append((services.clock() - T0, len(admissions)))
        if during_round:
            during_round(len(batches))

    signals.entries_admitted.connect(count)
    try:
        report = ticker.run_tick(batches=8, interval=1.0, **fake_pacing)
    finally:
        signals.entries_admitted.disconnect(count)
    return report, batches


def test_batches_spread_the_rate_over_the_tick(make_queue, fake_pacing):
    report, batches = paced_tick(make_queue, fake_pacing)
    # The first round comes right after the burst (nothing to add); then 10 per round.
    assert report.ticked[0].batches == 8
    assert batches == [(0.125 * i, 10) for i in range(1, 8)]
    assert report.admitted == 70


def test_a_queue_held_by_another_tick_is_skipped(make_queue, fake_pacing):
    queue = make_queue(mode="always", capacity=5)
    join_many(queue, 3)
    lease = ticker.get_lease()
    assert lease.acquire(queue.store_id, "another-worker", 30)
    report = ticker.run_tick(batches=1, **fake_pacing)
    assert report.skipped == ["sale"] and report.ticked == [] and report.admitted == 0
    lease.release(queue.store_id, "another-worker")
    assert ticker.run_tick(batches=1, **fake_pacing).admitted == 3


def _expire(lease, queue_id):
    """End a lease's time to live without waiting for it."""
    if hasattr(lease, "client"):
        lease.client.delete(lease._keys(queue_id)[0])
    else:
        owner, _until = lease._held[queue_id]
        lease._held[queue_id] = (owner, lease.timer() - 1)


def test_a_stale_tick_is_fenced_and_writes_nothing_more(make_queue, fake_pacing):
    queue = make_queue(mode="always", rate_per_minute=6000)
    join_many(queue, 400)
    lease = ticker.get_lease()
    tokens = []

    def stall_then_lose_the_lease(seconds):
        fake_pacing["sleep"](seconds)
        if not tokens:
            # The worker stalls past its lease; another tick takes the queue over.
            _expire(lease, queue.store_id)
            tokens.append(lease.acquire(queue.store_id, "newer", 30))

    report = ticker.run_tick(
        batches=10, interval=1.0, timer=fake_pacing["timer"], sleep=stall_then_lose_the_lease
    )
    (done,) = report.ticked
    assert done.fenced and done.batches == 1 and tokens[0] == done.token + 1
    assert not QueueSample.objects.filter(queue=queue).exists()  # the stale tick wrote no sample
    assert lease.renew(queue.store_id, "newer", tokens[0], 30)  # its release left the lease be


def test_the_tick_samples_the_line_once_a_minute(make_queue, fake_pacing):
    queue = make_queue(mode="always", capacity=2)
    join_many(queue, 5)
    ticker.run_tick(batches=1, **fake_pacing)
    ticker.run_tick(batches=1, **fake_pacing)
    ticker._sampled.clear()  # another worker: the database still takes one row a minute
    ticker.run_tick(batches=1, **fake_pacing)
    assert list(QueueSample.objects.values_list("waiting", "active", "admitted_total")) == [
        (3, 2, 2)
    ]
    fake_pacing["timer"].advance(60)
    ticker.run_tick(batches=1, **fake_pacing)
    minutes = list(QueueSample.objects.order_by("at").values_list("at", flat=True))
    assert [m.timestamp() for m in minutes] == [T0 // 60 * 60, T0 // 60 * 60 + 60]


def test_one_failing_queue_does_not_stop_the_others(make_queue, fake_pacing, monkeypatch):
    broken = make_queue(slug="broken", mode="always", capacity=2)
    fine = make_queue(slug="fine", mode="always", capacity=2)
    join_many(broken, 2)
    join_many(fine, 2, start=10)
    real_tick = services.tick

    def tick(queue, *args, **kwargs):
        if queue.slug == "broken":
            raise RuntimeError("database went away")
        return real_tick(queue, *args, **kwargs)

    monkeypatch.setattr(services, "tick", tick)
    report = ticker.run_tick(batches=3, **fake_pacing)
    by_slug = {t.slug: t for t in report.ticked}
    assert by_slug["broken"].error == "RuntimeError: database went away"
    assert by_slug["broken"].batches == 0
    assert by_slug["fine"].admitted == 2 and by_slug["fine"].batches == 3


def test_tickable_queues_include_a_closed_queue_while_its_passes_may_live(make_queue, now):
    running = make_queue(slug="running")
    closed = make_queue(slug="closed", purchase_window=600)
    services.close(closed)
    assert {q.slug for q in ticker.tickable_queues()} == {"running", "closed"}
    now.advance(600 + 61)
    assert {q.slug for q in ticker.tickable_queues()} == {"running"}
    assert running.state == "open"


def test_a_scheduled_queue_opens_on_the_first_tick_after_its_time(make_queue, fake_pacing):
    opens = datetime.fromtimestamp(T0 + 30, tz=UTC)
    queue = make_queue(state="scheduled", opens_at=opens, mode="always", capacity=10)
    join_many(queue, 4)
    assert ticker.run_tick(batches=1, **fake_pacing).admitted == 0
    fake_pacing["timer"].advance(31)
    assert ticker.run_tick(batches=1, **fake_pacing).admitted == 4
    queue.refresh_from_db()
    assert queue.state == "open" and queue.prequeue_seed is not None


# -- cleanup ----------------------------------------------------------------------------


archived = []


def archive(rows):
    archived.extend(rows.values_list("seq", flat=True))


def test_cleanup_abandons_entries_unseen_past_the_grace(make_queue, now):
    queue = make_queue(mode="always", capacity=1, disconnect_grace=100)
    seqs = join_many(queue, 3)
    now.advance(50)
    services.heartbeat(queue, "anon:2")
    now.advance(51)
    report = retention.cleanup()
    assert report.abandoned == 2
    assert states(queue) == {seqs[0]: "abandoned", seqs[1]: "abandoned", seqs[2]: "waiting"}


def test_cleanup_deletes_old_ended_entries_but_the_newest(make_queue, now, settings):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "ENTRY_RETENTION": 3600,
        "ENTRY_ARCHIVER": "tests.ops.test_ticker.archive",
    }
    archived.clear()
    queue = make_queue(mode="always", capacity=10, purchase_window=60)
    seqs = join_many(queue, 4)
    services.tick(queue)
    services.revoke(queue, seqs)  # all four ended at T0
    now.advance(1800)
    assert retention.cleanup().deleted == 0  # not old enough
    now.advance(1801)
    report = retention.cleanup()
    # The newest entry stays: a rebuild numbers new entries after the highest seq it finds.
    assert report.deleted == 3 and sorted(archived) == seqs[:3]
    assert list(Entry.objects.filter(queue=queue).values_list("seq", flat=True)) == [seqs[3]]
    services.rebuild(queue)
    assert services.join(queue, "anon:new").seq == seqs[3] + 1
    assert Admission.objects.filter(queue=queue).count() == 4  # the log is kept


def test_cleanup_drops_old_samples_and_runs_once_at_a_time(make_queue, now, live_store):
    queue = make_queue()
    QueueSample.objects.create(
        queue=queue,
        at=datetime.fromtimestamp(T0 - 8 * 86400, tz=UTC),
        waiting=1,
        active=0,
        admitted_total=0,
    )
    assert live_store.acquire_lock("cleanup", "someone-else", ttl=30)
    assert retention.cleanup().skipped
    live_store.release_lock("cleanup", "someone-else")
    report = retention.cleanup()
    assert report.samples_deleted == 1 and not report.skipped
    assert not Queue.objects.get(pk=queue.pk).samples.exists()


def test_a_slow_round_is_merged_with_the_rounds_it_overran(make_queue, fake_pacing):
    # The same pace; the third round takes 375 ms (a slow database).
    def slow_third(rounds_so_far):
        if rounds_so_far == 2:
            fake_pacing["timer"].advance(0.375)

    report, batches = paced_tick(make_queue, fake_pacing, during_round=slow_third)
    # The rounds due at 375 and 500 ms are not run back to back after it: the one due at
    # 625 ms runs at once and admits what the bucket gathered meanwhile. Nothing is lost.
    assert batches == [(0.125, 10), (0.25, 10), (0.625, 30), (0.75, 10), (0.875, 10)]
    assert report.ticked[0].batches == 6 and report.admitted == 70


def test_a_tick_that_holds_no_queue_returns_at_once(make_queue, fake_pacing):
    queue = make_queue(mode="always", capacity=5)
    join_many(queue, 3)
    lease = ticker.get_lease()
    assert lease.acquire(queue.store_id, "another-worker", 30)
    start = fake_pacing["timer"]()
    report = ticker.run_tick(batches=10, interval=1.0, **fake_pacing)
    assert report.skipped == ["sale"] and fake_pacing["timer"]() == start  # no sleeping
    lease.release(queue.store_id, "another-worker")


def test_a_backstop_tick_takes_only_the_queues_nobody_took_from_its_round(make_queue, fake_pacing):
    taken = make_queue(slug="taken", mode="always", capacity=5)
    free = make_queue(slug="free", mode="always", capacity=5)
    join_many(taken, 3)
    join_many(free, 3, start=10)
    lease = ticker.get_lease()
    assert lease.acquire(taken.store_id, "its-own-task", 30)
    report = ticker.run_tick(batches=4, interval=1.0, first_batch=1, **fake_pacing)
    # It waited for its round (250 ms), took the free queue only and ran rounds 1 to 3.
    assert report.skipped == ["taken"]
    (done,) = report.ticked
    assert (done.slug, done.batches, done.admitted) == ("free", 3, 3)
    assert fake_pacing["timer"]() - T0 == 0.75
    lease.release(taken.store_id, "its-own-task")


@pytest.mark.django_db(transaction=True)
def test_a_join_whose_row_lands_after_the_close_is_settled_by_the_cleanup(make_queue, monkeypatch):
    from django.db import connection

    if connection.vendor == "sqlite":
        pytest.skip("threads share no in-memory SQLite database")
    import threading

    queue = make_queue(mode="always")
    join_many(queue, 2)
    # The one order that strands a row: the close copies the journal, the late join takes
    # its place in the store, the close turns the line away, then the join writes its row.
    synced, store_done, close_done = threading.Event(), threading.Event(), threading.Event()
    real_sync_journal, real_create_row = services.sync_journal, rows.create_entry

    def sync_then_let_the_join_in(queue):
        changes = real_sync_journal(queue)
        if not synced.is_set():
            synced.set()
            assert store_done.wait(10)
        return changes

    def row_after_the_close(*args):
        store_done.set()
        assert close_done.wait(10)
        return real_create_row(*args)

    monkeypatch.setattr(services, "sync_journal", sync_then_let_the_join_in)
    monkeypatch.setattr(rows, "create_entry", row_after_the_close)
    answers = []

    def join_late():
        try:
            assert synced.wait(10)
            answers.append(services.join(Queue.objects.get(pk=queue.pk), "anon:late"))
        finally:
            connection.close()

    joiner = threading.Thread(target=join_late)
    joiner.start()
    services.close(queue)
    close_done.set()
    joiner.join(10)
    late = answers[0]
    # The close came between the store step and the row: the row says waiting, the store
    # holds nothing for it (it was turned away with the rest).
    assert states(queue)[late.seq] == "waiting"
    assert services.status(queue, "anon:late").state is None
    report = retention.cleanup()
    assert report.settled == 1
    assert set(states(queue).values()) == {"revoked"}
    assert retention.cleanup().settled == 0
