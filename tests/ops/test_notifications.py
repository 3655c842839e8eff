""" "Your turn" notifications and presence: an admitted entry with no live connection is told
(email through the locmem backend), a connected one is not, nobody is told twice."""

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from ticketqueue import notifications, presence, services, ticker
from ticketqueue.notifications import LocmemNotifier, Notifier

from .conftest import T0

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
    services.open_connections(queue, [ident(users[0])])  # watching the page
    services.open_connections(queue, [ident(users[1])])
    services.disconnect(queue, ident(users[1]))  # closed the tab
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


def test_away_tells_since_when_the_last_connection_went(live_store, now, settings):
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "PRESENCE_TIMEOUT": 60}
    presence.mark_connected("9", "user:1")
    presence.mark_connected("9", "user:1")  # two tabs
    presence.mark_connected("9", "user:2")
    presence.mark_connected("9", "user:3")
    now.advance(10)
    presence.mark_disconnected("9", "user:1")  # one tab of two: still there
    presence.mark_disconnected("9", "user:2")  # gone at T0 + 10
    now.advance(100)  # user:3's server died at T0 without a word: quiet since then
    presence.refresh("9", "user:1")
    assert presence.away("9", ["user:1", "user:2", "user:3", "user:4"]) == {
        "user:2": T0 + 10,
        "user:3": T0,
        "user:4": None,  # never connected
    }
    presence.mark_connected("9", "user:2")  # back
    assert "user:2" not in presence.away("9", ["user:2"])


def test_disconnect_without_connect_is_harmless(live_store, now):
    presence.mark_disconnected("9", "user:1")
    presence.mark_connected("9", "user:1")
    assert presence.is_connected("9", "user:1")


# -- the webhook notifier -------------------------------------------------------------------


class Relay:
    """A local HTTP server standing in for the site's push relay: it records each request
    and answers with the next status in ``statuses`` (then 204)."""

    def __init__(self, statuses=(), delay=0.0):
        import http.server
        import threading

        relay = self
        self.requests = []
        self.statuses = list(statuses)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                relay.requests.append((self.path, dict(self.headers), body))
                if delay:
                    threading.Event().wait(delay)
                self.send_response(relay.statuses.pop(0) if relay.statuses else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/push/turn"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def relay():
    servers = []

    def start(**kwargs):
        servers.append(Relay(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def webhook_settings(settings, url, *notifiers, **extra):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "NOTIFIERS": ["ticketqueue.notifications.WebhookNotifier", *notifiers],
        "WEBHOOK_URL": url,
        "WEBHOOK_SECRET": "relay-secret",
        "NOTIFY_URL": "https://tickets.example.com/queue/{queue}/",
        **extra,
    }


def test_the_webhook_posts_one_signed_batch_to_the_relay(make_queue, users, now, settings, relay):
    import hmac
    import json
    import time

    server = relay()
    webhook_settings(settings, server.url)
    queue = make_queue(slug="tour", name="Arena tour", mode="always", capacity=10)
    services.join(queue, "anon:visitor")  # push reaches anonymous visitors too
    services.join(queue, ident(users[0]))
    result = services.tick(queue)
    assert notifications.notify_turn(queue, result.admitted) == 2
    ((path, headers, body),) = server.requests
    assert path == "/push/turn" and headers["Content-Type"] == "application/json"
    # The relay's side: recompute the signature over "<timestamp>.<body>", compare, check age.
    timestamp = headers["X-Ticketqueue-Timestamp"]
    mac = hmac.new(b"relay-secret", f"{timestamp}.".encode() + body, "sha256")
    expected = "v1=" + mac.hexdigest()
    assert hmac.compare_digest(headers["X-Ticketqueue-Signature"], expected)
    assert headers["X-Ticketqueue-Signature"] == notifications.webhook_signature(
        "relay-secret", timestamp, body
    )
    assert abs(int(timestamp) - time.time()) < 60
    message = json.loads(body)
    assert message["type"] == "turn"
    assert message["queue"] == {"id": queue.store_id, "slug": "tour", "name": "Arena tour"}
    assert [(r["id"], r["identity"], r["url"]) for r in message["recipients"]] == [
        (f"{queue.store_id}.{a.seq}", a.identity, "https://tickets.example.com/queue/tour/")
        for a in result.admitted
    ]
    assert message["recipients"][0]["expires_at"] == result.admitted[0].expires_at
    # Told once: a redelivered task sends nothing more.
    targets = notifications.absent(queue, result.admitted)
    assert notifications.deliver(queue, targets, retry=True) == 0
    assert len(server.requests) == 1


def test_a_failed_webhook_is_handed_back_to_celery_and_only_it_is_retried(
    make_queue, users, now, settings, relay, caplog
):
    from ticketqueue import tasks

    server = relay(statuses=[503])
    webhook_settings(settings, server.url, "ticketqueue.notifications.LocmemNotifier")
    queue = make_queue(mode="always", capacity=10)
    services.join(queue, "anon:visitor")
    result = services.tick(queue)
    targets = notifications.absent(queue, result.admitted)
    with pytest.raises(notifications.NotificationFailed):
        notifications.deliver(queue, targets, retry=True)  # the relay answered 503
    assert "turn notification failed" in caplog.text
    assert len(LocmemNotifier.outbox) == 1  # the other channel did its job
    # Celery retries the task on that error; the retry reaches the relay, and only the relay.
    assert notifications.NotificationFailed in tasks.send_notifications.autoretry_for
    assert notifications.deliver(queue, targets, retry=True) == 1
    assert len(server.requests) == 2 and len(LocmemNotifier.outbox) == 1
    # Without Celery (inline notify_turn) a failure is logged, never raised.
    server.statuses.append(500)
    services.join(queue, "anon:second")
    second = services.tick(queue)
    assert notifications.notify_turn(queue, second.admitted) == 1  # locmem only


def test_a_webhook_that_does_not_answer_in_time_fails(make_queue, now, settings, relay):
    server = relay(delay=1.0)
    webhook_settings(settings, server.url, WEBHOOK_TIMEOUT=0.2)
    queue = make_queue(mode="always", capacity=10)
    services.join(queue, "anon:visitor")
    result = services.tick(queue)
    with pytest.raises(notifications.NotificationFailed):
        notifications.deliver(queue, notifications.absent(queue, result.admitted), retry=True)


def test_the_webhook_settings_are_checked(settings):
    from ticketqueue.checks import check_operations_settings

    webhook_settings(settings, "ftp://relay.example.com/", WEBHOOK_SECRET="")
    codes = [e.id for e in check_operations_settings()]
    assert codes == ["ticketqueue.E064", "ticketqueue.E064"]
    webhook_settings(settings, "https://relay.example.com/turn")
    assert check_operations_settings() == []
