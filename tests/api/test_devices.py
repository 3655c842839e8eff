"""One device per person over REST and at the purchase gate: the newest device takes a waiting
place, the pass is bound to the device that was admitted (its ``dev`` claim), and another
device of the same person cannot buy with it or take the place back."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from ticketqueue import passes, services
from ticketqueue.identity import DEVICE_COOKIE, device_digest

from .conftest import code_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fan():
    return User.objects.create_user("fan", password="fan-pass-123")


def device(user):
    """A browser of ``user``: its own cookie jar, so its own device id."""
    client = Client()
    client.force_login(user)
    return client


def join(client, slug="sale"):
    return client.post(f"/queue/api/queues/{slug}/join/")


def test_the_newest_device_takes_the_place_and_the_pass_stays_on_the_admitted_one(
    make_queue, fan, clock
):
    queue = make_queue(mode="always", capacity=1, device_policy="one")
    phone, laptop = device(fan), device(fan)
    first = join(phone)
    assert first.status_code == 200 and first.json()["state"] == "waiting"
    phone_id = phone.cookies[DEVICE_COOKIE].value
    assert first["X-Queue-Device"] == phone_id  # for clients that keep no cookies
    moved = join(laptop)
    assert moved.json()["seq"] == first.json()["seq"]  # the same place, on the laptop now
    laptop_id = laptop.cookies[DEVICE_COOKIE].value
    assert laptop_id != phone_id
    services.tick(queue, clock())
    granted = laptop.get("/queue/api/queues/sale/status/").json()
    claims = passes.verify(granted["pass"], queue_id=queue.store_id, now=clock())
    assert claims.device == device_digest(laptop_id)
    # The phone cannot take the admitted place back, nor buy with the laptop's pass.
    assert code_of(join(phone)) == (409, "device_in_use")
    auth = {"HTTP_AUTHORIZATION": f"QueuePass {granted['pass']}"}
    assert code_of(phone.get("/buy/sale/", **auth)) == (403, "pass_wrong_device")
    assert laptop.get("/buy/sale/", **auth).status_code == 200
    # An app without cookies names its device in a header.
    app = Client(HTTP_X_QUEUE_DEVICE=laptop_id)
    app.force_login(fan)
    assert app.get("/buy/sale/", **auth).status_code == 200


def test_a_shared_queue_binds_no_device(make_queue, fan, clock):
    make_queue(mode="auto", capacity=5)
    phone, laptop = device(fan), device(fan)
    token = join(phone).json()["pass"]
    assert passes.verify(token, now=clock()).device is None
    auth = {"HTTP_AUTHORIZATION": f"QueuePass {token}"}
    assert laptop.get("/buy/sale/", **auth).status_code == 200


def test_a_malformed_device_id_counts_as_none(make_queue, fan):
    make_queue(mode="always", capacity=1, device_policy="one")
    client = Client(HTTP_X_QUEUE_DEVICE="short")
    client.force_login(fan)
    response = join(client)
    assert response.status_code == 200  # a new device id is given instead
    assert len(response["X-Queue-Device"]) >= 16
