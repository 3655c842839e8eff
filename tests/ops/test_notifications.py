""" "Your turn" notifications and presence: an admitted entry with no live connection is told
(email through the locmem backend), a connected one is not, nobody is told twice."""

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from ticketqueue import notifications, presence, services, ticker
from ticketqueue.notifications import LocmemNotifier, Notifier

pytestmark = pytest.mark.django_db


@pytest.fixture
def users():
    model = get_user_model()
    return [model.objects.create_user(f"buyer{i}", email=f"buyer{i}@example.com") for i in range(4)]


def ident(user):
    return f"user:{user.pk}"


def test_an_admitted_disconnected_entry_gets_an_email_a_connected_one_does_not(
    make_queue, users, fake_pacing
):
    queue = make_queue(name="Arena tour", mode="always", capacity=3, purchase_window=600)
    for user in users:
        services.join(queue, ident(user))
    presence.mark_connected(queue.store_id, ident(users[0]))  # watching the page
    presence.mark_connected(queue.store_id, ident(users[1]))
    presence.mark_disconnected(queue.store_id, ident(users[1]))  # closed the tab
    report = ticker.run_tick(batches=1, **fake_pacing)
    assert report.admitted == 3 and report.ticked[0].notified == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["buyer1@example.com", "buyer2@example.com"]
    message = mail.outbox[0]
    assert message.subject == "Your turn: Arena tour"
    assert "Your pass lets you buy until" in message.body
    # users[3] still waits: not told anything.
    assert all("buyer3" not in m.to[0] for m in mail.outbox)


def test_anonymous_visitors_and_users_without_email_are_skipped(make_queue, users, now):
    queue = make_queue(mode="always", capacity=10)
    users[0].email = ""
    users[0].save()
    services.join(queue, ident(users[0]))
    services.join(queue, "anon:abc")
    services.join(queue, "user:not-a-number")
    services.join(queue, ident(users[1]))
    result = services.tick(queue)
    assert len(result.admitted) == 4
    assert notifications.notify_turn(queue, result.admitted) == 1
    assert [m.to for m in mail.outbox] == [["buyer1@example.com"]]


def test_a_delivery_retried_tells_nobody_twice(make_queue, users, now):
    queue = make_queue(mode="always", capacity=10)
    services.join(queue, ident(users[0]))
    result = services.tick(queue)
    targets = notifications.absent(queue, result.admitted)
    assert notifications.deliver(queue, targets) == 1
    assert notifications.deliver(queue, targets) == 0  # a redelivered task
    assert len(mail.outbox) == 1


def test_a_pass_already_over_is_no_news(make_queue, users, now):
    queue = make_queue(mode="always", capacity=10, purchase_window=60)
    services.join(queue, ident(users[0]))
    result = services.tick(queue)
    now.advance(61)
    assert notifications.notify_turn(queue, result.admitted) == 0 and mail.outbox == []


class Broken(Notifier):
    def notify(self, recipients):
        raise ConnectionError("push service down")


def test_notifiers_are_pluggable_and_one_failing_does_not_stop_the_others(
    make_queue, users, now, settings, caplog
):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "NOTIFIERS": [
            "tests.ops.test_notifications.Broken",
            "ticketqueue.notifications.LocmemNotifier",
        ],
        "NOTIFY_URL": "https://tickets.example.com/queue/{queue}/",
    }
    queue = make_queue(slug="tour", mode="always", capacity=10)
    services.join(queue, "anon:visitor")  # push can reach anonymous visitors; email cannot
    result = services.tick(queue)
    assert notifications.notify_turn(queue, result.admitted) == 1
    (recipient,) = LocmemNotifier.outbox
    assert (recipient.identity, recipient.queue_slug, recipient.url) == (
        "anon:visitor",
        "tour",
        "https://tickets.example.com/queue/tour/",
    )
    assert "turn notification failed" in caplog.text and mail.outbox == []


def resolve_staff_emails(identities):
    return {i: "box-office@example.com" for i in identities if i.startswith("anon:")}


def test_the_email_resolver_is_pluggable(make_queue, now, settings):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "EMAIL_RESOLVER": "tests.ops.test_notifications.resolve_staff_emails",
    }
    queue = make_queue(mode="always", capacity=10)
    services.join(queue, "anon:1")
    result = services.tick(queue)
    assert notifications.notify_turn(queue, result.admitted) == 1
    assert mail.outbox[0].to == ["box-office@example.com"]


# -- presence -----------------------------------------------------------------------------


def test_presence_counts_every_connection_of_an_identity(live_store, now):
    presence.mark_connected("9", "user:1")
    presence.mark_connected("9", "user:1")  # a second tab
    presence.mark_connected("9", "user:2")
    assert presence.connected("9", ["user:1", "user:2", "user:3"]) == {"user:1", "user:2"}
    presence.mark_disconnected("9", "user:1")
    assert presence.is_connected("9", "user:1")  # the other tab is still open
    presence.mark_disconnected("9", "user:1")
    assert not presence.is_connected("9", "user:1")
    assert not presence.is_connected("10", "user:2")  # per queue


def test_presence_ends_without_a_refresh_for_the_timeout(live_store, now, settings):
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "PRESENCE_TIMEOUT": 60}
    presence.mark_connected("9", "user:1")
    presence.mark_connected("9", "user:2")
    now.advance(45)
    presence.refresh("9", "user:1")
    now.advance(45)
    # user:2's server died without saying goodbye: it no longer counts.
    assert presence.connected("9", ["user:1", "user:2"]) == {"user:1"}
    presence.mark_connected("9", "user:2")  # reconnected elsewhere
    assert presence.is_connected("9", "user:2")


def test_disconnect_without_connect_is_harmless(live_store, now):
    presence.mark_disconnected("9", "user:1")
    presence.mark_connected("9", "user:1")
    assert presence.is_connected("9", "user:1")
