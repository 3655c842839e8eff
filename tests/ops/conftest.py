import pytest
from django.core import mail

from ticketqueue import notifications, services, ticker
from ticketqueue.models import Queue

from ..servers import asgi_server, server_settings, store_for_server  # noqa: F401 - fixtures

T0 = 1_800_000_000.0

#: The celery processes a test started (tests/ops/test_celery.py), each with its log.
CELERY_PROCESSES = pytest.StashKey[list]()
#: How much of each log a failure's report shows (the whole log stays in the test's tmp_path).
LOG_TAIL_LINES = 200


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that failed with celery processes running reports what they logged."""
    report = yield
    if report.failed:
        for proc in item.stash.get(CELERY_PROCESSES, []):
            lines = proc.text().splitlines()
            title = f"celery {proc.name}: {proc.log}"
            if len(lines) > LOG_TAIL_LINES:
                title += f" (its last {LOG_TAIL_LINES} of {len(lines)} lines)"
            report.sections.append((title, "\n".join(lines[-LOG_TAIL_LINES:])))
    return report


@pytest.fixture
def now(clock, monkeypatch):
    """services.clock on an injected clock at T0: tests move time, nobody sleeps."""
    clock.now = T0
    monkeypatch.setattr(services, "clock", clock)
    ticker._sampled.clear()
    notifications.LocmemNotifier.outbox.clear()
    mail.outbox = []
    return clock


@pytest.fixture
def make_queue(live_store, now):
    def make(**fields):
        fields.setdefault("slug", "sale")
        fields.setdefault("name", "The sale")
        queue = Queue.objects.create(**fields)
        services.configure(queue)
        return queue

    return make


@pytest.fixture
def fake_pacing(now):
    """timer/sleep for run_tick that move the injected clock instead of waiting."""

    def sleep(seconds):
        now.advance(seconds)

    return {"timer": now, "sleep": sleep}
