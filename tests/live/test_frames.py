"""Bad frames get an error with a stable code and change nothing; the socket stays usable."""

import json

import pytest
import pytest_asyncio

from ticketqueue import services
from ticketqueue.live.connection import QueueSocket

from .conftest import in_thread

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("socket_app"),
]


@pytest.fixture
def frozen(monkeypatch, clock):
    """The socket's clock stands still: the rate limit refills nothing during a test."""
    monkeypatch.setattr(QueueSocket, "clock", staticmethod(clock))
    return clock


@pytest_asyncio.fixture
async def waiting_socket(make_queue, hub, visitor, frozen):
    queue = await in_thread(make_queue)()
    ahead = visitor()
    await in_thread(services.join)(queue, ahead.identity)
    me = visitor()
    sock = await me.socket(queue).open()
    await sock.next()
    await sock.send(type="join")
    joined = await sock.next()
    assert joined["position"] == 2
    yield queue, me, sock, joined
    await sock.disconnect()


def joined_seq(queue, me):
    from ticketqueue.models import Entry

    return Entry.objects.get(queue=queue, identity=me.identity).seq


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json at all", "invalid_json"),
        ('{"type": "join"', "invalid_json"),
        ("[1, 2, 3]", "invalid_message"),
        ('{"no_type": true}', "invalid_message"),
        ('{"type": 42}', "invalid_message"),
        ('{"type": "admit_me"}', "unknown_type"),
        (json.dumps({"type": "leave", "padding": "x" * 5000}), "frame_too_large"),
        (json.dumps({"type": "leave", "padding": "é" * 1500}), "frame_too_large"),
    ],
)
async def test_a_bad_text_frame_gets_its_code_and_changes_nothing(waiting_socket, frame, code):
    queue, me, sock, joined = waiting_socket
    await sock.send_to(text_data=frame)
    error = await sock.next()
    assert error["type"] == "error" and error["code"] == code and error["message"]
    await in_thread(assert_unchanged_sync)(queue, me)
    await sock.send(type="status")  # the socket still answers
    assert await sock.next() == joined


def assert_unchanged_sync(queue, me):
    status = services.status(queue, me.identity)
    assert (status.state, status.position, status.seq) == ("waiting", 2, joined_seq(queue, me))


async def test_a_binary_frame_is_refused(waiting_socket):
    queue, me, sock, joined = waiting_socket
    await sock.send_to(bytes_data=json.dumps({"type": "leave"}).encode())
    assert (await sock.next())["code"] == "invalid_frame"
    await in_thread(assert_unchanged_sync)(queue, me)


async def test_a_flood_is_cut_off_and_changes_nothing(waiting_socket, frozen):
    queue, me, sock, joined = waiting_socket
    # The bucket holds WS_MESSAGE_BURST (20) messages; the fixture spent one on the join.
    for _ in range(19):
        await sock.send(type="heartbeat")
    for _ in range(5):
        await sock.send(type="leave")  # over the limit: dropped, not acted on
    assert (await sock.next())["code"] == "rate_limited"  # said once, not five times
    await in_thread(assert_unchanged_sync)(queue, me)

    frozen.advance(1.0)  # a second later the bucket has refilled by WS_MESSAGE_RATE (5)
    await sock.send(type="status")
    assert await sock.next() == joined
