"""The Celery app the ops tests run real workers and beats with, on the real Redis broker.

Started as ``celery -A tests.ops.celery_app worker|beat`` by the tests, which pass the test
database's name and a queue name of their own in the environment. ``TQ_TEST_HANG_MARKER``
makes the worker stop dead between the store's admission and the row writes (to be killed).
"""

import os
import time
from pathlib import Path

from celery import Celery
from celery.signals import task_postrun, task_prerun

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
