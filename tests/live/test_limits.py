"""Who may take a place and how many: the per-address and per-identity limits on the socket and
the waiting page (the same counts in the store as the REST throttles, so no path is a way around
them), and queues for logged-in users only, on every path."""

import pytest
from django.test import Client
from django.urls import reverse

from ticketqueue.conf import DEFAULTS
from ticketqueue.identity import VISITOR_COOKIE
from ticketqueue.store import get_store

from .conftest import Visitor, in_thread

pytestmark = pytest.mark.django_db(transaction=True)
on_loop = pytest.mark.asyncio
ADDRESS = "203.0.113.7"


@pytest.fixture
def rates(live_settings):
    def set_rates(**given):
        live_settings.TICKETQUEUE = {
            **live_settings.TICKETQUEUE,
            "THROTTLE_RATES": {scope: given.get(scope) for scope in DEFAULTS["THROTTLE_RATES"]},
        }

    return set_rates


def from_address(socket, address=ADDRESS):
    socket.scope["client"] = (address, 40000)
    return socket


def waiting(queue):
    return get_store().counts(queue.store_id, 0).waiting


@on_loop
async def test_socket_joins_share_the_address_limit_with_rest(make_queue, rates, hub, socket_app):
    rates(join_ip="3/min")
    queue = await in_thread(make_queue)()
    # Two places asked for over REST from the address, then sockets from it.
    rest = await in_thread(
        lambda: [
            Client(REMOTE_ADDR=ADDRESS).post(f"/queue/api/queues/{queue.slug}/join/").status_code
            for _ in range(2)
        ]
    )()
    assert rest == [200, 200]
    sockets = [await from_address(Visitor().socket(queue)).open() for _ in range(3)]
    for socket in sockets:
        await socket.next_of("queue_update")
    await sockets[0].send(type="join")
    assert (await sockets[0].next_place())["state"] == "waiting"
    for socket in sockets[1:]:
        await socket.send(type="join")
        error = await socket.next_of("error")
        assert error["code"] == "throttled" and 0 < error["retry_after"] <= 120
    assert await in_thread(waiting)(queue) == 3  # the limit, whichever way they came
    # Another address is not touched by it.
    other = await from_address(Visitor().socket(queue), "198.51.100.9").open()
    await other.next_of("queue_update")
    await other.send(type="join")
    assert (await other.next_place())["state"] == "waiting"
    for socket in [*sockets, other]:
        await socket.disconnect()


@on_loop
async def test_sockets_opened_per_identity_are_limited(make_queue, rates, hub, socket_app):
    rates(connect_identity="2/min")
    queue = await in_thread(make_queue)()
    person = Visitor()
    first = await person.socket(queue).open()
    await first.next_of("queue_update")  # counted (the count follows the accept)
    second = await person.socket(queue).open()
    await second.next_of("queue_update")
    third = await person.socket(queue).open()
    error = await third.next_of("error")
    assert error["code"] == "throttled"
    closed = await third.receive_output(timeout=10)
    assert closed == {"type": "websocket.close", "code": 4429}  # not fatal: reconnect later
    # Someone else is not affected.
    other = await Visitor().socket(queue).open()
    assert (await other.next_of("queue_update"))["type"] == "queue_update"
    for socket in (first, second, other):
        await socket.disconnect()


def test_the_waiting_page_gives_out_visitor_ids_within_the_address_limit(make_queue, rates):
    rates(visitor_ip="2/min")
    queue = make_queue()
    url = reverse("ticketqueue:waiting", kwargs={"slug": queue.slug})
    minted = [VISITOR_COOKIE in Client(REMOTE_ADDR=ADDRESS).get(url).cookies for _ in range(4)]
    assert minted == [True, True, False, False]
    # The REST API counts the ids it gives out against the same limit.
    response = Client(REMOTE_ADDR=ADDRESS).post(f"/queue/api/queues/{queue.slug}/join/")
    assert response.status_code == 429
    assert Client(REMOTE_ADDR="198.51.100.9").get(url).cookies.get(VISITOR_COOKIE)


def test_a_queue_for_logged_in_users_asks_visitors_to_log_in_over_rest(make_queue):
    from django.contrib.auth.models import User

    queue = make_queue(who_may_join="users")
    url = f"/queue/api/queues/{queue.slug}/join/"
    response = Client().post(url)
    assert (response.status_code, response.json()["code"]) == (403, "login_required")
    fan = User.objects.create_user("fan", password="fan-pass-123")
    client = Client()
    client.force_login(fan)
    assert client.post(url).json()["state"] == "waiting"


@on_loop
async def test_a_queue_for_logged_in_users_asks_visitors_to_log_in_over_the_socket(
    make_queue, hub, socket_app
):
    queue = await in_thread(make_queue)(who_may_join="users")
    socket = await Visitor().socket(queue).open()
    await socket.next_of("queue_update")
    await socket.send(type="join")
    assert (await socket.next_of("error"))["code"] == "login_required"
    assert await in_thread(waiting)(queue) == 0
    await socket.disconnect()
