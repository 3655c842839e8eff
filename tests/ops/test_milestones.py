"""Milestones for people away from the page: within N of the front, about M minutes left and
the pass ending soon, each heard once, through the notifiers (the live half is in
tests/live/test_milestones.py). The tick (``ticker.run_tick``) finds them."""

import pytest
from django.core import mail

from ticketqueue import notifications, services, ticker
from ticketqueue.courier import get_courier
from ticketqueue.notifications import LocmemNotifier

from .conftest import T0

pytestmark = pytest.mark.django_db


@pytest.fixture
def locmem(settings):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "NOTIFIERS": ["ticketqueue.notifications.LocmemNotifier"],
    }


def told(milestone):
    return [(r.identity, r.seq) for r in LocmemNotifier.outbox if r.milestone == milestone]


def tick(fake_pacing):
    return ticker.run_tick(batches=1, **fake_pacing)


def test_people_within_n_of_the_front_hear_it_once(make_queue, fake_pacing, locmem):
    queue = make_queue(mode="always", capacity=1, notify_within=2, notify_pass_ending=None)
    for i in range(6):
        services.join(queue, f"anon:{i}")
    report = tick(fake_pacing)
    assert report.admitted == 1 and report.ticked[0].milestones == 2
    # anon:0 was admitted (its turn); anon:1 and anon:2 are now 1st and 2nd.
    assert told("near") == [("anon:1", 2), ("anon:2", 3)]
    assert told("turn") == [("anon:0", 1)]
    tick(fake_pacing)  # nobody moved: nobody new is near
    assert len(told("near")) == 2
    services.release_entry(queue, 1)
    tick(fake_pacing)  # anon:1 admitted, anon:3 comes within 2
    assert told("near") == [("anon:1", 2), ("anon:2", 3), ("anon:3", 4)]
    near = [r for r in LocmemNotifier.outbox if r.milestone == "near"][0]
    assert (near.within, near.expires_at, near.id) == (2, None, f"{queue.store_id}.2.near")
    assert near.text()[0] == "Almost your turn: The sale"


def test_people_about_m_minutes_away_hear_it_by_the_line_rate(make_queue, fake_pacing, locmem):
    # 60 admissions a minute: one minute away is 60 places, within the 1-minute milestone.
    queue = make_queue(mode="always", rate_per_minute=60, notify_minutes_left=1)
    for i in range(100):
        services.join(queue, f"anon:{i}")
    tick(fake_pacing)
    soon = told("soon")
    admitted = len(told("turn"))
    assert admitted >= 1
    assert [seq for _identity, seq in soon] == list(range(admitted + 1, admitted + 61))
    assert {r.minutes for r in LocmemNotifier.outbox if r.milestone == "soon"} == {1}
    tick(fake_pacing)  # the line moved on: only the newly reached hear it
    again = told("soon")
    assert len(again) == len(set(again)) and again[: len(soon)] == soon


def test_a_pass_holder_hears_it_is_ending_once(make_queue, now, fake_pacing, locmem):
    queue = make_queue(mode="always", capacity=2, purchase_window=300, notify_pass_ending=120)
    services.join(queue, "anon:early")
    tick(fake_pacing)
    now.advance(60)
    services.join(queue, "anon:late")
    tick(fake_pacing)
    assert told("ending") == []
    now.now = T0 + 181  # anon:early's pass ends at T0 + 300: within 120 s
    tick(fake_pacing)
    assert told("ending") == [("anon:early", 1)]
    ending = [r for r in LocmemNotifier.outbox if r.milestone == "ending"][0]
    assert ending.expires_at == T0 + 300
    now.advance(60)  # anon:late's turn to be reminded; anon:early not again
    tick(fake_pacing)
    assert told("ending") == [("anon:early", 1), ("anon:late", 2)]


def test_nobody_is_near_anything_before_the_draw(make_queue, now, fake_pacing, locmem):
    from datetime import UTC, datetime

    opens = datetime.fromtimestamp(T0 + 3600, tz=UTC)
    queue = make_queue(state="scheduled", opens_at=opens, capacity=1, notify_within=5)
    for i in range(3):
        services.join(queue, f"anon:{i}")
    tick(fake_pacing)
    assert told("near") == []


def test_milestones_are_off_by_default_except_the_pass_reminder(make_queue, fake_pacing, locmem):
    queue = make_queue(mode="always", capacity=1)
    assert (queue.notify_within, queue.notify_minutes_left, queue.notify_pass_ending) == (
        None,
        None,
        120,
    )
    for i in range(3):
        services.join(queue, f"anon:{i}")
    assert tick(fake_pacing).ticked[0].milestones == 0
    assert told("near") == told("soon") == []


@pytest.mark.django_db(transaction=True)  # the courier's thread reads the user's email
def test_each_milestone_reads_as_its_own_email(make_queue, now, fake_pacing, django_user_model):
    user = django_user_model.objects.create_user("fan", email="fan@example.com")
    queue = make_queue(
        name="Arena tour", mode="always", capacity=1, notify_within=3, purchase_window=600
    )
    services.join(queue, "anon:first")
    services.join(queue, f"user:{user.pk}")
    tick(fake_pacing)
    (near,) = mail.outbox
    assert near.to == ["fan@example.com"] and near.subject == "Almost your turn: Arena tour"
    assert "within 3 places of the front" in near.body
    services.release_entry(queue, 1)  # the fan is let in at once, told by the courier
    assert get_courier().join()
    tick(fake_pacing)
    now.advance(600 - 119)
    tick(fake_pacing)
    assert [m.subject for m in mail.outbox] == [
        "Almost your turn: Arena tour",
        "Your turn: Arena tour",
        "Your pass ends soon: Arena tour",
    ]
    assert "Finish your purchase before then." in mail.outbox[2].body


def test_a_retried_milestone_tells_nobody_twice(make_queue, now, locmem):
    queue = make_queue(mode="always", capacity=1)
    services.join(queue, "anon:1")
    targets = [(1, "anon:1", T0 + 3600)]
    assert notifications.deliver(queue, targets, milestone="near") == 1
    assert notifications.deliver(queue, targets, milestone="near") == 0
    assert notifications.deliver(queue, targets, milestone="soon") == 1  # another milestone
