"""The demo's Celery app and beat schedule: ``celery -A demo_project worker`` and
``celery -A demo_project beat``. ticketqueue ships the tasks; the schedule is the project's.

Beat sends ``ticketqueue.tasks.tick`` every second. Inside it each queue is admitted in
TICK_BATCHES rounds (10 = every 100 ms), so a queue admitting 500/s gets 50 every 100 ms.
A tick message that waited past its second is dropped (``expires``): the next one does the
work. Running beat twice by accident is safe: the second tick finds each queue's lease held.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings_production")

app = Celery("demo_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

#: Seconds between ticks; keep equal to TICKETQUEUE["TICK_INTERVAL"].
TICK_EVERY = 1.0

app.conf.beat_schedule = {
    "ticketqueue-tick": {
        "task": "ticketqueue.tasks.tick",
        "schedule": TICK_EVERY,
        "options": {"expires": TICK_EVERY},
    },
    "ticketqueue-cleanup": {
        "task": "ticketqueue.tasks.cleanup",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
}
app.conf.task_acks_late = True
app.conf.worker_prefetch_multiplier = 1  # a busy worker must not hold ticks another could run
app.conf.task_ignore_result = True  # a tick a second would otherwise fill the result store
app.conf.broker_connection_retry_on_startup = True
