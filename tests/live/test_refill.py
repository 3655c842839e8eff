"""A pass that ends lets the next in line in at once: the next person's socket hears
``granted`` from the release itself, before any tick runs."""

import pytest
from django.test import Client

from ticketqueue import services
from ticketqueue.identity import VISITOR_COOKIE

from .conftest import in_thread

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("socket_app"),
]


async def waiting_socket(queue, person):
    sock = await person.socket(queue).open()
    await sock.next()
    await sock.send(type="join")
    assert (await sock.next_place())["state"] == "waiting"
    return sock


def release_over_rest(queue, person, token):
    client = Client()
    client.cookies[VISITOR_COOKIE] = person.cookie  # the pass holder's own request
    answer = client.post(
        f"/queue/api/queues/{queue.slug}/release/", HTTP_AUTHORIZATION=f"QueuePass {token}"
    )
    return answer.status_code, answer.json()


async def test_the_next_in_line_is_granted_by_the_release_itself(make_queue, hub, visitor):
    queue = await in_thread(make_queue)(capacity=1)
    buyer, next_one, after = visitor(), visitor(), visitor()
    first = await waiting_socket(queue, buyer)
    await in_thread(services.tick)(queue)
    granted = await first.next_of("granted")
    second = await waiting_socket(queue, next_one)
    third = await waiting_socket(queue, after)

    status, body = await in_thread(release_over_rest)(queue, buyer, granted["pass"])
    assert (status, body["state"]) == (200, "completed")
    # No tick ran: the release let the next one in.
    handed = await second.next_of("granted")
    assert handed["seq"] == (await in_thread(services.status)(queue, next_one.identity)).seq
    assert (await in_thread(services.status)(queue, after.identity)).state == "waiting"
    for sock in (first, second, third):
        await sock.disconnect()
