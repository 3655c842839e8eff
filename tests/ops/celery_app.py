"""The Celery app the ops tests run real workers and beats with, on the real Redis broker.

Started as ``celery -A tests.ops.celery_app worker|beat`` by the tests, which pass the test
database's name and a queue name of their own in the environment. ``TQ_TEST_HANG_MARKER``
makes the worker stop dead between the store's admission and the row writes (to be killed).
``TQ_TEST_RENDEZVOUS`` names a folder where a fanned-out tick waits for its queues' own tasks
(see ``_rendezvous_run_tick``).
"""

import logging
import os
import socket
import time
import uuid
from pathlib import Path

from celery import Celery, current_task
from celery.signals import before_task_publish, task_postrun, task_prerun, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

BROKER = os.environ.get("TQ_TEST_BROKER", "redis://127.0.0.1:6379/13")
#: Seconds between the beat's ticks (the demo's is 1 s; the tests go faster).
TICK_EVERY = float(os.environ.get("TQ_TEST_TICK_EVERY", "0.25"))

app = Celery("tqtests", broker=BROKER, backend=BROKER)
app.conf.update(
    task_default_queue=os.environ.get("TQ_TEST_CELERY_QUEUE", "tqtests"),
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    result_expires=600,
    worker_hijack_root_logger=False,
    beat_schedule={
        "ticketqueue-tick": {
            "task": "ticketqueue.tasks.tick",
            "schedule": TICK_EVERY,
            "options": {"expires": 4 * TICK_EVERY},
        }
    },
)
app.autodiscover_tasks(["ticketqueue"])

log = logging.getLogger("celery.tqtests")


@task_prerun.connect
def _hang_inside_the_row_writes(**kwargs):
    marker = os.environ.get("TQ_TEST_HANG_MARKER")
    if not marker:
        return
    from ticketqueue import services

    if getattr(services._sync, "hangs", False):
        return
    real_sync = services._sync

    def hanging_sync(queue, changes):
        changes = list(changes)
        if any(c.state.value == "admitted" for c in changes):
            # The store has admitted; the rows are not written. Wait here to be killed.
            Path(marker).write_text(str(os.getpid()))
            time.sleep(3600)
        return real_sync(queue, changes)

    hanging_sync.hangs = True
    services._sync = hanging_sync


@task_postrun.connect
def _close_database_connections(**kwargs):
    # A worker started inside the test process (start_worker) runs tasks in its own thread;
    # its connection must not outlive the test, or the test database cannot be dropped.
    from django.db import connections

    connections.close_all()


# -- the rendezvous of a fanned-out tick --------------------------------------------------
#
# With TICK_BATCHES=2, ``tasks.tick`` fans a task out to each queue and then, as the backstop,
# takes at its second round (500 ms later) the queues whose lease nobody holds. Whether each
# queue's own task has taken its lease by then depends only on how fast a loaded machine
# wakes the free workers. Once the test creates ``armed`` in the folder, the order is fixed
# instead:
#
# - each queue's own task, once it holds its lease and ran its first round, writes
#   ``held-<queue id>``, then keeps its lease (renewed) until the backstop looked;
# - the backstop takes its leases only when every fanned-out queue is ``held-`` (or after
#   BACKSTOP_PATIENCE, then taking what nobody holds), then writes ``backstop-done``;
# - the per-queue tasks do not expire: a slow worker takes its task late, not never.
#
# So queues taken by free workers are never the backstop's, however slow the machine; a
# queue that no free worker took (no fan-out, one worker taking both tasks in turn, a lease
# the backstop ignores) still ends up in the backstop's report, as without the rendezvous.

#: How long the backstop waits for the queues' own tasks (only a broken fan-out waits it out).
BACKSTOP_PATIENCE = 10.0
#: How long a queue's own task keeps its lease waiting for the backstop (longer than that).
OWN_TASK_PATIENCE = 2 * BACKSTOP_PATIENCE


def _rendezvous() -> Path | None:
    """The rendezvous folder once the test armed it (in a worker the tests started)."""
    folder = os.environ.get("TQ_TEST_RENDEZVOUS")
    if folder and (Path(folder) / "armed").exists():
        return Path(folder)
    return None


def poll_until(condition, seconds):
    """Whether ``condition`` came true within ``seconds``; it polls what other processes do."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)  # polling another process, not waiting for time to pass
    return condition()


def _rendezvous_run_tick(real_run_tick):
    """``ticker.run_tick`` in a test worker: as it is, until the rendezvous is armed."""
    from ticketqueue import ticker
    from ticketqueue.conf import queue_settings

    def run_tick(*, queues=None, first_batch=0, sleep=time.sleep, owner=None, **kwargs):
        folder = _rendezvous()
        task = current_task.name if current_task else None
        backstop = task == "ticketqueue.tasks.tick" and first_batch > 0
        if folder is None or not (backstop or task == "ticketqueue.tasks.tick_queue"):
            return real_run_tick(
                queues=queues, first_batch=first_batch, sleep=sleep, owner=owner, **kwargs
            )
        queues = list(ticker.tickable_queues() if queues is None else queues)
        marks = [folder / f"held-{queue.store_id}" for queue in queues]
        owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"

        if backstop:

            def backstop_sleep(seconds):
                sleep(seconds)
                if not poll_until(lambda: all(mark.exists() for mark in marks), BACKSTOP_PATIENCE):
                    missing = [mark.name for mark in marks if not mark.exists()]
                    log.warning("rendezvous: the backstop gave up waiting for %s", missing)

            try:
                return real_run_tick(
                    queues=queues,
                    first_batch=first_batch,
                    sleep=backstop_sleep,
                    owner=owner,
                    **kwargs,
                )
            finally:
                (folder / "backstop-done").touch()

        lease = ticker.get_lease()  # a queue's own task (tasks.tick_queue)
        ttl = ticker.lease_ttl(float(queue_settings.TICK_INTERVAL))

        def own_sleep(seconds):
            due = time.monotonic() + seconds
            for mark in marks:
                mark.touch()
            done = folder / "backstop-done"
            deadline = time.monotonic() + OWN_TASK_PATIENCE
            while not done.exists() and time.monotonic() < deadline:
                for queue in queues:  # keep the lease, as its next round would
                    lease.renew(queue.store_id, owner, lease.token(queue.store_id), ttl)
                time.sleep(0.01)
            sleep(max(0.0, due - time.monotonic()))

        return real_run_tick(queues=queues, sleep=own_sleep, owner=owner, **kwargs)

    run_tick.rendezvous = True
    return run_tick


@worker_ready.connect
def _install_the_rendezvous(**kwargs):
    if not os.environ.get("TQ_TEST_RENDEZVOUS"):
        return  # not a worker the tests started as a process of its own
    from ticketqueue import ticker

    if not getattr(ticker.run_tick, "rendezvous", False):
        ticker.run_tick = _rendezvous_run_tick(ticker.run_tick)


@before_task_publish.connect
def _per_queue_tasks_wait_for_a_slow_worker(sender=None, headers=None, **kwargs):
    if sender == "ticketqueue.tasks.tick_queue" and headers is not None and _rendezvous():
        headers["expires"] = None
