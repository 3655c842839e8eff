"""Push to phones: a mobile app registers its token through the API, and the FCM and APNs
notifiers tell each registered device its milestones. Each service is a local stand-in that
checks every request as the service documents it (tests/pushstub.py); no network calls."""

import json
import time

import jwt
import pytest
from django.test import Client

from ticketqueue import notifications, push, services
from ticketqueue.api.queue_rows import forget_rows
from ticketqueue.models import PushDevice

from ..pushstub import APNsStub, FCMStub
from .conftest import T0

pytestmark = pytest.mark.django_db

FCM_TOKEN = "fJz3k2:APA91bH" + "x" * 140
APNS_TOKEN = "a1" * 32


@pytest.fixture(autouse=True)
def fresh_rows():
    """The API keeps queue rows 2 s per process: each test's queue is a new row."""
    forget_rows()
    yield
    forget_rows()


@pytest.fixture
def fcm(settings):
    stub = FCMStub().start()
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "NOTIFIERS": ["ticketqueue.push.FCMNotifier"],
        "FCM_CREDENTIALS": json.dumps(stub.account),
        "FCM_ENDPOINT": stub.url,
    }
    yield stub
    stub.stop()


@pytest.fixture
def apns(settings):
    stub = APNsStub().start()
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "NOTIFIERS": ["ticketqueue.push.APNsNotifier"],
        "APNS_KEY": stub.key_pem,
        "APNS_KEY_ID": stub.KEY_ID,
        "APNS_TEAM_ID": stub.TEAM_ID,
        "APNS_TOPIC": stub.TOPIC,
        "APNS_ENDPOINT": stub.url,
    }
    yield stub
    stub.stop()


@pytest.fixture
def fresh_notifiers():
    notifications.close_notifiers()  # each test's notifiers see its own stand-in
    yield
    notifications.close_notifiers()


# -- registration through the API ----------------------------------------------------------


def app_client(queue):
    """A mobile app: it joins over REST and keeps the visitor id the answer gives."""
    client = Client()
    answer = client.post(f"/queue/api/queues/{queue.slug}/join/")
    assert answer.status_code == 200
    return client, {"HTTP_X_QUEUE_VISITOR": answer["X-Queue-Visitor"]}, answer.json()


def devices_url(queue):
    return f"/queue/api/queues/{queue.slug}/devices/"


def post(client, url, body, **headers):
    return client.post(url, json.dumps(body), content_type="application/json", **headers)


def test_an_app_registers_and_drops_its_push_token(make_queue):
    queue = make_queue(mode="always", capacity=1)
    client, me, status = app_client(queue)
    answer = post(client, devices_url(queue), {"platform": "fcm", "token": FCM_TOKEN}, **me)
    assert answer.status_code == 201
    assert answer.json() == {"platform": "fcm", "token": FCM_TOKEN}
    (device,) = PushDevice.objects.all()
    assert (device.queue, device.platform, device.token) == (queue, "fcm", FCM_TOKEN)
    assert device.identity == queue.entries.get(seq=status["seq"]).identity
    again = post(client, devices_url(queue), {"platform": "fcm", "token": FCM_TOKEN}, **me)
    assert again.status_code == 201 and PushDevice.objects.count() == 1  # idempotent

    gone = client.delete(
        devices_url(queue),
        json.dumps({"platform": "fcm", "token": FCM_TOKEN}),
        content_type="application/json",
        **me,
    )
    assert gone.status_code == 204 and PushDevice.objects.count() == 0
    twice = client.delete(
        devices_url(queue),
        json.dumps({"platform": "fcm", "token": FCM_TOKEN}),
        content_type="application/json",
        **me,
    )
    assert (twice.status_code, twice.json()["code"]) == (404, "push_device_not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"platform": "gcm", "token": FCM_TOKEN},
        {"platform": "apns", "token": "not-hex"},
        {"platform": "apns", "token": "ab" * 10},
        {"platform": "fcm", "token": "short"},
        {"platform": "fcm", "token": FCM_TOKEN, "extra": 1},
        {"platform": "fcm"},
        ["fcm", FCM_TOKEN],
    ],
)
def test_a_bad_registration_is_refused_and_stores_nothing(make_queue, body):
    queue = make_queue(mode="always", capacity=1)
    client, me, _ = app_client(queue)
    answer = post(client, devices_url(queue), body, **me)
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_input"
    assert PushDevice.objects.count() == 0


def test_registration_needs_an_identity_and_a_queue(make_queue):
    queue = make_queue(mode="always", capacity=1)
    anonymous = post(Client(), devices_url(queue), {"platform": "apns", "token": APNS_TOKEN})
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "identity_required")
    client, me, _ = app_client(queue)
    missing = post(client, "/queue/api/queues/nope/devices/", {"platform": "apns"}, **me)
    assert (missing.status_code, missing.json()["code"]) == (404, "queue_not_found")
    assert PushDevice.objects.count() == 0


def test_a_person_keeps_the_newest_devices_and_a_token_follows_its_phone(make_queue):
    queue = make_queue(mode="always", capacity=1)
    client, me, _ = app_client(queue)
    tokens = [f"{i:02x}" * 32 for i in range(push.MAX_DEVICES + 1)]
    for token in tokens:
        assert post(client, devices_url(queue), {"platform": "apns", "token": token}, **me)
    kept = set(PushDevice.objects.values_list("token", flat=True))
    assert len(kept) == push.MAX_DEVICES and tokens[0] not in kept
    other, them, _ = app_client(queue)  # the last phone now belongs to someone else
    post(other, devices_url(queue), {"platform": "apns", "token": tokens[-1]}, **them)
    owner = PushDevice.objects.get(token=tokens[-1]).identity
    assert owner != PushDevice.objects.get(token=tokens[1]).identity


def test_registrations_are_limited_per_identity(make_queue, settings):
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "THROTTLE_RATES": {
            **settings.TICKETQUEUE.get("THROTTLE_RATES", {}),
            "device_identity": "3/min",
        },
    }
    queue = make_queue(mode="always", capacity=1)
    client, me, _ = app_client(queue)
    codes = [
        post(client, devices_url(queue), {"platform": "apns", "token": f"{i:02x}" * 32}, **me)
        for i in range(4)
    ]
    assert [c.status_code for c in codes] == [201, 201, 201, 429]
    assert codes[-1].json()["code"] == "throttled" and codes[-1]["Retry-After"]
    assert PushDevice.objects.count() == 3


# -- FCM HTTP v1 ------------------------------------------------------------------------------


def register(queue, identity, platform, token):
    return push.register(queue, identity, platform, token)


def test_fcm_gets_one_documented_request_per_device(make_queue, fcm, fresh_notifiers):
    queue = make_queue(name="Arena tour", slug="arena", mode="always", capacity=5)
    services.join(queue, "anon:phone")
    register(queue, "anon:phone", "fcm", FCM_TOKEN)
    register(queue, "anon:phone", "fcm", FCM_TOKEN + "b")  # a tablet too
    services.join(queue, "anon:nophone")  # no device: nothing to send
    targets = [(1, "anon:phone", T0 + 900), (2, "anon:nophone", T0 + 900)]
    assert notifications.deliver(queue, targets, retry=True) == 1
    assert fcm.broken == []
    assert len(fcm.tokens_issued) == 1  # one access token for both requests
    assert sorted(m["token"] for m in fcm.requests) == [FCM_TOKEN, FCM_TOKEN + "b"]
    message = fcm.requests[0]
    assert message["notification"]["title"] == "Your turn: Arena tour"
    assert message["data"] == {
        "queue": "arena",
        "milestone": "turn",
        "seq": "1",
        "expires_at": repr(T0 + 900),
        "url": "",
    }
    assert message["android"]["collapse_key"] == f"{queue.store_id}.1"


def test_fcm_forgets_unregistered_tokens_and_retries_only_what_failed(
    make_queue, fcm, fresh_notifiers
):
    queue = make_queue(mode="always", capacity=5, notify_within=3)
    for name, token in (("gone", "g" * 40), ("busy", "b" * 40), ("fine", "f" * 40)):
        services.join(queue, f"anon:{name}")
        register(queue, f"anon:{name}", "fcm", token)
    fcm.unregistered.add("g" * 40)
    fcm.unavailable.add("b" * 40)
    targets = [
        (1, "anon:gone", T0 + 3600),
        (2, "anon:busy", T0 + 3600),
        (3, "anon:fine", T0 + 3600),
    ]
    with pytest.raises(notifications.NotificationFailed):
        notifications.deliver(queue, targets, retry=True, milestone="near")
    assert not PushDevice.objects.filter(token="g" * 40).exists()  # forgotten
    assert [m["token"] for m in fcm.requests] == ["f" * 40]
    # The retry (Celery's, with backoff) reaches the busy one only.
    assert notifications.deliver(queue, targets, retry=True, milestone="near") == 1
    assert [m["token"] for m in fcm.requests] == ["f" * 40, "b" * 40]
    assert fcm.requests[1]["notification"]["title"] == "Almost your turn: The sale"
    assert fcm.broken == []


def test_fcm_renews_an_access_token_it_was_refused(make_queue, fcm, fresh_notifiers):
    queue = make_queue(mode="always", capacity=5)
    services.join(queue, "anon:phone")
    register(queue, "anon:phone", "fcm", FCM_TOKEN)
    notifier = notifications.get_notifiers()[0]
    notifier._access = ("ya29.revoked", T0 * 2)  # cached, but the service no longer takes it
    assert notifications.deliver(queue, [(1, "anon:phone", T0 + 900)]) == 1
    assert len(fcm.tokens_issued) == 1 and len(fcm.requests) == 1
    assert fcm.broken == ["Bearer ya29.revoked"]  # the one refusal that made it renew


# -- APNs over HTTP/2 -------------------------------------------------------------------------


def test_apns_gets_an_http2_request_with_a_provider_token(make_queue, apns, fresh_notifiers):
    queue = make_queue(name="Arena tour", mode="always", capacity=5, purchase_window=600)
    services.join(queue, "anon:iphone")
    register(queue, "anon:iphone", "apns", APNS_TOKEN)
    assert notifications.deliver(queue, [(1, "anon:iphone", T0 + 600)], milestone="ending") == 1
    assert apns.broken == []
    (request,) = apns.requests
    assert request["device"] == APNS_TOKEN
    assert request["headers"]["apns-collapse-id"] == f"{queue.store_id}.1.ending"
    assert request["headers"]["apns-topic"] == "com.example.tickets"
    assert request["payload"]["aps"]["alert"]["title"] == "Your pass ends soon: Arena tour"
    assert request["payload"]["milestone"] == "ending"


def test_apns_renews_an_expired_provider_token_and_forgets_gone_devices(
    make_queue, apns, fresh_notifiers
):
    queue = make_queue(mode="always", capacity=5)
    gone, fine = "0f" * 32, "f0" * 32
    for name, token in (("gone", gone), ("fine", fine)):
        services.join(queue, f"anon:{name}")
        register(queue, f"anon:{name}", "apns", token)
    apns.gone.add(gone)
    # The notifier holds a token it made 50 minutes ago by Apple's clock: Apple says expired.
    notifier = notifications.get_notifiers()[0]
    stale = jwt.encode(
        {"iss": apns.TEAM_ID, "iat": int(time.time()) - 3000},
        apns.key_pem,
        algorithm="ES256",
        headers={"kid": apns.KEY_ID},
    )
    notifier._provider = (stale, time.time())
    apns.expire_tokens_issued_before = time.time() - 60
    targets = [(1, "anon:gone", T0 + 900), (2, "anon:fine", T0 + 900)]
    assert notifications.deliver(queue, targets) == 1
    assert [r["device"] for r in apns.requests] == [fine]
    assert not PushDevice.objects.filter(token=gone).exists()
    assert apns.broken == []


def test_apns_busy_is_retried_later(make_queue, apns, fresh_notifiers):
    queue = make_queue(mode="always", capacity=5)
    services.join(queue, "anon:iphone")
    register(queue, "anon:iphone", "apns", APNS_TOKEN)
    apns.busy.add(APNS_TOKEN)
    targets = [(1, "anon:iphone", T0 + 900)]
    with pytest.raises(notifications.NotificationFailed):
        notifications.deliver(queue, targets, retry=True)
    assert notifications.deliver(queue, targets, retry=True) == 1
    assert len(apns.requests) == 1


def test_the_push_settings_are_checked(settings):
    from ticketqueue.checks import check_operations_settings

    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "NOTIFIERS": ["ticketqueue.push.FCMNotifier", "ticketqueue.push.APNsNotifier"],
        "APNS_KEY": "/run/secrets/apns.p8",
        "APNS_TOPIC": "com.example.tickets",
    }
    problems = [(e.id, e.msg) for e in check_operations_settings()]
    assert problems == [
        ("ticketqueue.E065", "FCMNotifier needs TICKETQUEUE['FCM_CREDENTIALS']."),
        ("ticketqueue.E065", "APNsNotifier needs TICKETQUEUE['APNS_KEY_ID']."),
        ("ticketqueue.E065", "APNsNotifier needs TICKETQUEUE['APNS_TEAM_ID']."),
    ]
