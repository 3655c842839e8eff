"""The tasks in real Celery workers on the real Redis broker, against the test database:
one worker in this process, then worker and beat processes (two workers, beat running twice,
a worker killed with SIGKILL in the middle of a tick)."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection

from ticketqueue import services
from ticketqueue.core import PassNotActive
from ticketqueue.models import Admission, Entry, Queue

from .celery_app import app, poll_until
from .conftest import CELERY_PROCESSES

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    # Celery's Redis result backend still calls redis-py's deprecated setex.
    pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
REDIS_STORE = settings.TICKETQUEUE["STORE"].endswith("RedisStore")
needs_shared_store = pytest.mark.skipif(
    not REDIS_STORE, reason="worker processes share the line only through Redis"
)


@pytest.fixture
def celery_queue(live_store):
    """A Celery queue of this test's own, so no other test run's worker takes its tasks."""
    name = f"tqtests-{uuid.uuid4().hex[:8]}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = name
    yield name
    app.conf.task_default_queue = previous


def make_queue(**fields):
    fields.setdefault("slug", "rush")
    fields.setdefault("name", "Rush")
    queue = Queue.objects.create(**fields)
    services.configure(queue)
    return queue


def wait_for(condition, timeout, what):
    if not poll_until(condition, timeout):
        raise AssertionError(f"timed out waiting for {what}")


def test_tasks_run_in_a_real_worker_on_the_redis_broker(celery_queue):
    from celery.contrib.testing.worker import start_worker

    queue = make_queue(mode="always", capacity=2, notify_within=1)
    users = get_user_model()
    away = users.objects.create_user("away", email="away@example.com")
    here = users.objects.create_user("here", email="here@example.com")
    third = users.objects.create_user("third", email="third@example.com")
    services.join(queue, f"user:{away.pk}")
    services.join(queue, f"user:{here.pk}")
    services.join(queue, f"user:{third.pk}")
    services.open_connections(queue, [f"user:{here.pk}"])  # what a socket does on opening
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        report = app.send_task("ticketqueue.tasks.tick").get(timeout=30)
        assert report["admitted"] == 2 and report["skipped"] == []
        assert report["ticked"][0]["notified"] == 1  # one admitted person is away
        assert report["ticked"][0]["milestones"] == 1  # the third is now first in line
        # The tick handed the emails to the notifier task, which the worker runs next.
        wait_for(lambda: len(mail.outbox) == 2, 30, "the turn and near notifications")
        cleaned = app.send_task("ticketqueue.tasks.cleanup").get(timeout=30)
    sent = sorted((m.to[0], m.subject) for m in mail.outbox)
    assert sent == [
        ("away@example.com", "Your turn: Rush"),
        ("third@example.com", "Almost your turn: Rush"),
    ]
    assert cleaned["skipped"] is False
    assert sorted(Entry.objects.filter(queue=queue).values_list("state", flat=True)) == [
        "admitted",
        "admitted",
        "waiting",
    ]


# -- worker and beat processes -----------------------------------------------------------


class Proc:
    """One celery process we started, its log in a file."""

    def __init__(self, tmp, name, args, env, nodename=None):
        self.log = tmp / f"{name}.log"
        self.name = name
        self.nodename = nodename
        self.handle = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.ops.celery_app", *args],
            cwd=ROOT,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def text(self):
        return self.log.read_text()

    def started(self):
        """Whether it logged that it is ready; fails at once if it exited instead."""
        code = self.popen.poll()
        if code is not None:
            raise AssertionError(f"{self.name} exited with {code}:\n{self.text()}")
        return " ready." in self.text()

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.handle.close()


@pytest.fixture
def rendezvous(tmp_path):
    """Where a fanned-out tick in these workers waits for its queues' own tasks, once the test
    creates ``armed`` in it (see tests/ops/celery_app.py): which worker ticks a queue then
    no longer depends on how fast a loaded machine wakes the workers."""
    folder = tmp_path / "rendezvous"
    folder.mkdir()
    return folder


@pytest.fixture
def slots_left_to_the_ticks(settings):
    """These tests are about the ticks: the buyers' releases here leave freed slots to them
    (REFILL_ON_RELEASE off in this process) instead of letting the next one in at once."""
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "REFILL_ON_RELEASE": False}


@pytest.fixture
def processes(request, tmp_path, celery_queue, rendezvous):
    started = []
    request.node.stash[CELERY_PROCESSES] = started  # their logs join a failure's report
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PGDATABASE": connection.settings_dict["NAME"],  # the test database itself
        "TQ_TEST_CELERY_QUEUE": celery_queue,
        "TQ_TEST_RENDEZVOUS": str(rendezvous),
    }

    def worker(name, **extra):
        # Named after this test's Celery queue too: another test run's workers on the broker
        # must not answer the ping meant for these.
        nodename = f"{name}-{celery_queue}@{socket.gethostname()}"
        args = ["worker", "-P", "solo", "-n", nodename, "-l", "INFO", "-Q", celery_queue]
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        proc = Proc(tmp_path, name, args, {**env, **extra}, nodename)
        started.append(proc)
        return proc

    def beat(name):
        args = ["beat", "-l", "INFO", "-s", str(tmp_path / f"{name}-schedule")]
        args += ["--pidfile", str(tmp_path / f"{name}.pid")]
        proc = Proc(tmp_path, name, args, env)
        started.append(proc)
        return proc

    def ready(*procs):
        for proc in procs:
            wait_for(proc.started, 60, f"{proc.name} to start")
        # Logged just before its event loop starts: a reply to a ping is the loop running.
        names = {proc.nodename for proc in procs}

        def answered():
            replies = app.control.ping(destination=sorted(names), timeout=1, limit=len(names))
            return names <= {name for reply in replies for name in reply}

        wait_for(answered, 30, f"{sorted(names)} to answer a ping")

    yield worker, beat, ready
    for proc in started:
        proc.stop()


@needs_shared_store
@pytest.mark.usefixtures("slots_left_to_the_ticks")
def test_two_workers_and_a_doubled_beat_admit_each_entry_once_within_capacity(
    processes, live_store
):
    worker, beat, ready = processes
    capacity, people = 2, 40  # at least 20 admitting ticks
    queue = make_queue(mode="always", capacity=capacity, purchase_window=600)
    seqs = [services.join(queue, f"user:{i}").seq for i in range(people)]
    workers = [worker("w1"), worker("w2")]
    ready(*workers)
    beats = [beat("beat1"), beat("beat2")]  # beat started twice by mistake
    samples, errors, stop = [], [], threading.Event()

    def buyers():
        # Buyers finish quickly: every slot turns over many times, tick after tick.
        try:
            while not stop.is_set():
                samples.append(live_store.counts(queue.store_id, time.time()).active)
                for record in live_store.dump(queue.store_id).active:
                    with contextlib.suppress(PassNotActive):
                        services.release_entry(queue, record.seq)
                time.sleep(0.02)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=buyers)
    thread.start()
    try:
        wait_for(
            lambda: Entry.objects.filter(queue=queue, state="completed").count() == people,
            120,
            "everyone to be admitted and to buy",
        )
    finally:
        stop.set()
        thread.join(30)
        for proc in beats + workers:
            proc.stop()
    assert not errors, errors
    services.sync_journal(queue)

    # Exactly once: one admission per entry, numbered in order; FIFO; capacity held.
    log = list(
        Admission.objects.filter(queue=queue).order_by("number").values_list("number", "seq")
    )
    assert [n for n, _ in log] == list(range(1, people + 1))
    assert [s for _, s in log] == seqs
    assert set(Entry.objects.filter(queue=queue).values_list("state", flat=True)) == {"completed"}
    assert samples and max(samples) <= capacity
    # Many ticks ran, from both beats. Which worker took each is the broker's choice (one fast
    # worker may take them all), so only the total is asserted, never the split.
    ticks = [len(re.findall(r"tasks\.tick\[[^]]+\] succeeded", w.text())) for w in workers]
    assert sum(ticks) >= people // capacity, ticks
    assert all("Sending due task ticketqueue-tick" in b.text() for b in beats)


@needs_shared_store
@pytest.mark.usefixtures("slots_left_to_the_ticks")
def test_a_worker_killed_mid_tick_leaves_nothing_the_next_tick_cannot_finish(
    processes, tmp_path, live_store
):
    worker, _beat, ready = processes
    queue = make_queue(mode="always", capacity=5, purchase_window=600)
    seqs = [services.join(queue, f"user:{i}").seq for i in range(12)]
    marker = tmp_path / "hung"
    doomed = worker("doomed", TQ_TEST_HANG_MARKER=str(marker))
    ready(doomed)
    app.send_task("ticketqueue.tasks.tick")
    wait_for(marker.exists, 60, "the worker to stop inside the row writes")
    # The store admitted five; their rows still say waiting.
    assert live_store.counts(queue.store_id, time.time()).active == 5
    assert not Entry.objects.filter(queue=queue, state="admitted").exists()
    os.kill(doomed.popen.pid, signal.SIGKILL)
    doomed.popen.wait(10)

    survivor = worker("survivor")
    ready(survivor)

    def next_tick_ran():
        # The dead worker's lease lasts until its time to live ends: until then, skipped.
        report = app.send_task("ticketqueue.tasks.tick").get(timeout=30)
        return bool(report["ticked"])

    wait_for(next_tick_ran, 60, "a tick after the dead worker's lease")
    admitted = list(
        Entry.objects.filter(queue=queue, state="admitted").order_by("seq").values_list("seq")
    )
    assert [s for (s,) in admitted] == seqs[:5]  # the journal finished the dead tick's rows
    assert list(
        Admission.objects.filter(queue=queue).order_by("number").values_list("number", "seq")
    ) == list(zip(range(1, 6), seqs[:5], strict=True))
    counts = live_store.counts(queue.store_id, time.time())
    assert (counts.active, counts.waiting, counts.admitted_total) == (5, 7, 5)
    # Life goes on: the buyers finish, the next tick admits the next five in order.
    for seq in seqs[:5]:
        services.release_entry(queue, seq)
    report = app.send_task("ticketqueue.tasks.tick").get(timeout=30)
    assert report["admitted"] == 5
    assert (
        list(Admission.objects.filter(queue=queue).order_by("number").values_list("seq", flat=True))
        == seqs[:10]
    )


@needs_shared_store
@pytest.mark.usefixtures("slots_left_to_the_ticks")
def test_several_queues_are_spread_over_the_workers_and_a_busy_site_still_ticks_them(
    processes, live_store, rendezvous
):
    worker, _beat, ready = processes
    queues = [make_queue(slug=s, mode="always", capacity=3, purchase_window=600) for s in "ab"]
    for queue in queues:
        for i in range(6):
            services.join(queue, f"user:{queue.slug}{i}")
    batches = {"TQ_TEST_TICK_BATCHES": "2"}  # each queue's tick: two rounds 500 ms apart

    # One worker, one slot: the per-queue tasks wait behind the tick that fanned them out,
    # which ticks both queues itself from its second round (the backstop).
    first = worker("first", **batches)
    ready(first)
    report = app.send_task("ticketqueue.tasks.tick").get(timeout=30)
    assert sorted(report["fanned_out"]) == ["a", "b"]
    assert sorted((t["slug"], t["batches"], t["admitted"]) for t in report["ticked"]) == [
        ("a", 1, 3),
        ("b", 1, 3),
    ]
    # Its per-queue tasks come next: each runs (finding nobody to admit) or has expired.
    finished = re.compile(
        r"tasks\.tick_queue\[[^]]+\] succeeded|Discarding revoked task: \S+\.tick_queue\["
    )
    wait_for(lambda: len(finished.findall(first.text())) == 2, 30, "the per-queue tasks")

    # Three workers: the per-queue tasks run at once on the two that are free, and hold their
    # queues when the backstop comes to them. The rendezvous makes that the order however late
    # a loaded machine wakes the free workers (the backstop waits for both leases to be held,
    # each task keeps its lease until the backstop looked): only a backstop that ticks a queue
    # its own task holds, or per-queue tasks that do not run at once, still fail here.
    others = [worker("second", **batches), worker("third", **batches)]
    ready(*others)
    for queue in queues:
        for record in live_store.dump(queue.store_id).active:
            services.release_entry(queue, record.seq)
    (rendezvous / "armed").touch()
    report = app.send_task("ticketqueue.tasks.tick").get(timeout=30)
    assert sorted(report["fanned_out"]) == ["a", "b"] and report["ticked"] == [], report
    per_queue = re.compile(r"tasks\.tick_queue\[[^]]+\] succeeded in [\d.]+s: .*'admitted': 3\}")
    wait_for(
        lambda: sum(len(per_queue.findall(w.text())) for w in [first, *others]) == 2,
        30,
        "both per-queue ticks",
    )
    ran = [len(per_queue.findall(w.text())) for w in [first, *others]]
    assert sorted(ran) == [0, 1, 1], ran  # two workers, one queue each
    for queue in queues:
        assert Entry.objects.filter(queue=queue, state="admitted").count() == 3
        assert list(
            Admission.objects.filter(queue=queue).order_by("number").values_list("number")
        ) == [(n,) for n in range(1, 7)]
