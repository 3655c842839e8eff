"""One device per person over the socket: a second device takes the waiting place and the
first hears device_replaced and is closed with 4409 (through the queue's broadcast, as any
other process would hear it); once admitted, another device is refused with device_in_use."""

import pytest

from ticketqueue import services
from ticketqueue.identity import DEVICE_COOKIE, VISITOR_COOKIE

from .conftest import Socket, Visitor, in_thread

pytestmark = pytest.mark.django_db(transaction=True)
on_loop = pytest.mark.asyncio


def on_device(person, queue, device_id):
    """``person``'s socket from one of its devices (its visitor cookie copied there)."""
    cookie = f"{VISITOR_COOKIE}={person.cookie}"
    if device_id:
        cookie += f"; {DEVICE_COOKIE}={device_id}"
    return Socket(queue.slug, [(b"cookie", cookie.encode()), (b"origin", b"http://testserver")])


@on_loop
async def test_the_newest_device_takes_the_place_and_the_old_one_is_told(
    make_queue, hub, socket_app
):
    queue = await in_thread(make_queue)(capacity=1, device_policy="one")
    person = Visitor()
    phone = await on_device(person, queue, "phone-device-0001").open()
    await phone.next_of("queue_update")
    await phone.send(type="join")
    placed = await phone.next_of("queue_update")
    assert placed["state"] == "waiting"
    laptop = await on_device(person, queue, "laptop-device-001").open()
    update = await laptop.next_of("queue_update")
    assert (update["state"], update["position"]) == ("waiting", 1)  # the same place
    replaced = await phone.next_of("error")
    assert replaced["code"] == "device_replaced"
    assert await phone.receive_output(timeout=10) == {"type": "websocket.close", "code": 4409}
    # Admitted on the laptop: the phone cannot take it back.
    await in_thread(services.tick)(queue)
    assert (await laptop.next_of("granted"))["pass"]
    again = await on_device(person, queue, "phone-device-0001").open()
    assert (await again.next_of("error"))["code"] == "device_in_use"
    assert await again.receive_output(timeout=10) == {"type": "websocket.close", "code": 4409}
    await laptop.disconnect()


@on_loop
async def test_a_socket_without_a_device_id_is_sent_for_one(make_queue, hub, socket_app):
    queue = await in_thread(make_queue)(device_policy="one")
    socket = await on_device(Visitor(), queue, None).open()
    assert (await socket.next_of("error"))["code"] == "device_required"
    assert await socket.receive_output(timeout=10) == {"type": "websocket.close", "code": 4401}


@on_loop
async def test_a_shared_queue_keeps_every_device(make_queue, hub, socket_app):
    queue = await in_thread(make_queue)()
    person = Visitor()
    phone = await on_device(person, queue, "phone-device-0001").open()
    await phone.next_of("queue_update")
    await phone.send(type="join")
    await phone.next_of("queue_update")
    laptop = await on_device(person, queue, "laptop-device-001").open()
    assert (await laptop.next_of("queue_update"))["position"] == 1
    await in_thread(services.tick)(queue)
    assert (await phone.next_of("granted"))["pass"] == (await laptop.next_of("granted"))["pass"]
    await phone.disconnect()
    await laptop.disconnect()
