"""The demo's commands: demo data with a fresh admin password, rundemo's set-up, the crowd."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from demo_project.shop.demo import EVENTS, add_crowd
from demo_project.shop.models import Event
from ticketqueue import services
from ticketqueue.models import Entry, Queue

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_load_demo_data_creates_events_with_their_queues_and_an_admin(live_store):
    output = run("load_demo_data")
    assert Event.objects.count() == len(EVENTS)
    for event in Event.objects.all():
        queue = Queue.objects.get(slug=event.slug)
        assert event.queue == queue and queue.event == event
    password = output.split("Admin login: admin / ")[1].split()[0]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)


def test_load_demo_data_is_idempotent_and_makes_a_new_password_each_time(live_store):
    first = run("load_demo_data").split("admin / ")[1].split()[0]
    second = run("load_demo_data").split("admin / ")[1].split()[0]
    assert first != second
    assert Event.objects.count() == Queue.objects.count() == len(EVENTS)
    assert not get_user_model().objects.get(username="admin").check_password(first)


def test_rundemo_sets_up_and_prints_where_to_go(live_store):
    output = run("rundemo", "127.0.0.1:8765", "--no-serve")
    assert "http://127.0.0.1:8765/" in output
    assert "Admin login:       admin / " in output
    assert Event.objects.count() == len(EVENTS)


def test_the_simulated_crowd_waits_then_buys_at_once(make_event):
    event = make_event(stock=100, mode="always", capacity=2)
    crowd = add_crowd(event, 5)
    assert crowd.joined == 5
    assert Entry.objects.filter(queue=event.queue, state="waiting").count() == 5
    services.tick(event.queue)
    # Admitted and released in the same tick: their slots are free for the next people.
    states = sorted(Entry.objects.filter(queue=event.queue).values_list("state", flat=True))
    assert states == ["completed", "completed", "waiting", "waiting", "waiting"]


def test_demo_crowd_command(make_event):
    event = make_event(mode="always")
    assert "3 people joined" in run("demo_crowd", event.slug, "--count", "3")
