"""Without Celery, notifications leave the tick on the courier's thread: a notifier that hangs
does not hold the tick loop, and one that fails is tried again with backoff."""

import threading

import pytest

from ticketqueue import services, tick_loop
from ticketqueue.courier import Courier
from ticketqueue.notifications import Notifier

pytestmark = pytest.mark.django_db(transaction=True)


class Stalling(Notifier):
    """Blocks until the test lets it go; fails its first call (a push service's 503)."""

    name = "stalling"
    retry = True
    entered = threading.Event()
    release = threading.Event()
    calls: list = []
    told: list = []

    def notify(self, recipients):
        self.calls.append([r.identity for r in recipients])
        self.entered.set()
        assert self.release.wait(20), "the test never let the notifier go"
        if len(self.calls) == 1:
            raise ConnectionError("push service answered 503")
        self.told.extend(r.identity for r in recipients)
        return len(recipients)


@pytest.fixture
def stalling(settings):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "NOTIFIERS": ["tests.ops.test_courier.Stalling"],
    }
    Stalling.entered.clear()
    Stalling.release.clear()
    Stalling.calls.clear()
    Stalling.told.clear()
    yield Stalling
    Stalling.release.set()


def test_a_hanging_notifier_does_not_hold_the_tick_loop_and_failures_are_retried(
    make_queue, stalling
):
    queue = make_queue(mode="always", capacity=1)
    services.join(queue, "anon:away")
    courier = Courier(backoff=0.01)
    report = tick_loop.run_loop(
        threading.Event(), ticks=2, interval=0.01, batches=1, cleanup_every=0, courier=courier
    )
    # Two ticks ran while the notifier was still stuck in its first call.
    assert report.ticks == 2 and report.admitted == 1
    assert stalling.entered.wait(10) and stalling.told == []
    stalling.release.set()
    assert courier.join(20)
    assert stalling.calls == [["anon:away"], ["anon:away"]]  # failed once, retried
    assert stalling.told == ["anon:away"]


def test_the_courier_gives_up_after_its_retries(make_queue, stalling, caplog):
    stalling.release.set()
    queue = make_queue(mode="always", capacity=1)
    services.join(queue, "anon:away")
    result = services.tick(queue)
    courier = Courier(backoff=0.001, retries=0)
    assert courier.turn(queue, result.admitted) == 1
    assert courier.join(20)
    assert stalling.calls == [["anon:away"]] and stalling.told == []
    assert "notifications given up" in caplog.text
