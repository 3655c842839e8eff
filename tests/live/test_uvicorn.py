"""The lighter uvicorn protocol (ticketqueue.live.uvicorn): its queue and flag on their own,
then the queue socket's protocol through a real uvicorn server using it, on both the Channels
consumer and the lean application."""

import asyncio
import json
import logging

import pytest
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ticketqueue import services
from ticketqueue.live.uvicorn import (
    INBOX_LIMIT,
    TESTED,
    Inbox,
    LeanWebSocketProtocol,
    WebSocketProtocol,
    Writable,
    choose,
)
from ticketqueue.models import Entry

from .conftest import TIMEOUT, in_thread, next_message, socket_to, uvicorn_serving

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def test_an_untested_uvicorn_gets_its_own_protocol_and_a_warning(caplog):
    tested = ".".join(map(str, TESTED[0]))
    with caplog.at_level(logging.WARNING, logger="ticketqueue.live"):
        assert choose(f"{tested}.3") is LeanWebSocketProtocol
        assert not caplog.records
        for other in ("0.53.0", "1.0.0", "0.99.1rc1"):
            assert choose(other) is WebSocketsSansIOProtocol
    assert [r.getMessage().split(": ")[0].rsplit(" ", 1)[-1] for r in caplog.records] == [
        "0.53.0",
        "1.0.0",
        "0.99.1rc1",
    ]


async def test_the_inbox_hands_out_messages_in_order_to_a_waiting_reader():
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done() and inbox.empty()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert await reader == 1
    assert inbox.qsize() == 1 and not inbox.empty()
    assert await inbox.get() == 2
    with pytest.raises(asyncio.QueueEmpty):
        inbox.get_nowait()

    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()  # a reader cancelled while waiting leaves the inbox usable
    with pytest.raises(asyncio.CancelledError):
        await reader
    inbox.put_nowait(3)
    assert await asyncio.wait_for(inbox.get(), TIMEOUT) == 3


async def test_the_writable_flag_holds_writers_while_cleared():
    flag = Writable()
    flag.set()
    assert await flag.wait() is True  # set: no waiting at all
    flag.clear()
    writers = [asyncio.ensure_future(flag.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in writers)
    flag.set()
    assert await asyncio.gather(*writers) == [True, True]
    assert flag.is_set()


async def test_the_queue_socket_through_the_lighter_protocol(served, make_queue, visitor):
    server, base = served
    queue = await in_thread(make_queue)()
    ahead, me = visitor(), visitor()
    await in_thread(services.join)(queue, ahead.identity)
    async with socket_to(base, queue.slug, me.cookie) as ws:
        assert (await next_message(ws))["state"] is None
        await ws.send(json.dumps({"type": "join"}))
        assert (await next_message(ws))["position"] == 2
        # What the protocol keeps per socket: its own inbox and flag, no handshake.
        (protocol,) = server.server_state.connections
        assert isinstance(protocol, WebSocketProtocol)
        assert isinstance(protocol.queue, Inbox) and isinstance(protocol.writable, Writable)
        assert protocol.request is None and protocol.response is None

        await in_thread(services.tick)(queue, limit=1)
        assert (await next_message(ws))["position"] == 1
        await ws.send("not json")
        assert (await next_message(ws))["code"] == "invalid_json"
        await ws.send(json.dumps({"type": "leave"}))
        assert await next_message(ws) == {"type": "left", "reason": "left"}


async def test_joins_of_one_moment_are_each_answered_after_their_own_row(
    served, make_queue, visitor
):
    _, base = served
    queue = await in_thread(make_queue)()
    people = [visitor() for _ in range(40)]

    def committed(identity):
        return Entry.objects.filter(queue=queue, identity=identity).exists()

    async def join(person):
        async with socket_to(base, queue.slug, person.cookie) as ws:
            await next_message(ws)
            await ws.send(json.dumps({"type": "join"}))
            answer = await next_message(ws)
            # Acknowledged: the row is in the database already (another connection reads it).
            return answer["position"], await in_thread(committed)(person.identity)

    answers = await asyncio.gather(*(join(person) for person in people))
    assert sorted(position for position, _ in answers) == list(range(1, len(people) + 1))
    assert all(row for _, row in answers)


async def test_refusals_through_the_lighter_protocol(served, visitor):
    _, base = served
    with pytest.raises(InvalidStatus) as refused:
        async with socket_to(base, "any", visitor().cookie, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with socket_to(base, "no-such-queue", visitor().cookie) as ws:
        assert (await next_message(ws))["code"] == "queue_not_found"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert closed.value.rcvd.code == 4404


async def test_past_sockets_per_process_a_handshake_gets_503_and_the_others_go_on(
    served, make_queue, visitor, live_settings, monkeypatch
):
    from ticketqueue.live import headroom

    # This process's own count, from zero: the sockets of earlier tests are not this test's.
    monkeypatch.setattr(headroom, "_headroom", headroom.Headroom())
    live_settings.TICKETQUEUE = {**live_settings.TICKETQUEUE, "SOCKETS_PER_PROCESS": 2}
    _, base = served
    queue = await in_thread(make_queue)()
    first, second, third = visitor(), visitor(), visitor()
    async with socket_to(base, queue.slug, first.cookie) as one:
        await next_message(one)
        async with socket_to(base, queue.slug, second.cookie) as two:
            await next_message(two)
            with pytest.raises(InvalidStatus) as refused:
                async with socket_to(base, queue.slug, third.cookie):
                    pass
            response = refused.value.response
            assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
            assert json.loads(response.body)["code"] == "server_busy"
            await two.send(json.dumps({"type": "join"}))
            assert (await next_message(two))["position"] == 1  # still served
        # One closed: once the server has seen it go, there is room again.
        for _ in range(100):
            try:
                async with socket_to(base, queue.slug, third.cookie) as three:
                    assert (await next_message(three))["type"] == "queue_update"
                    break
            except InvalidStatus:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the freed room was never given back")


async def test_a_prepared_frame_is_exactly_the_frame_websockets_would_write():
    from websockets.frames import Frame, Opcode

    from ticketqueue.live.protocol import prepared_text_frame

    for size in (0, 125, 126, 65535, 65536):
        text = "é" * (size // 2) + "x" * (size % 2)
        expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
        assert prepared_text_frame(text) == expected


async def _pings_seen(url, *, client_talks, seconds):
    """Pings a raw client (websockets' sans-I/O client on a plain stream) receives from
    ``url`` in ``seconds``, answering each; it sends a text frame every 30 ms if it talks."""
    from websockets.client import ClientProtocol
    from websockets.frames import Opcode
    from websockets.uri import parse_uri

    client = ClientProtocol(parse_uri(url))
    client.send_request(client.connect())
    reader, writer = await asyncio.open_connection(*url.split("/")[2].split(":"))
    pings = 0

    async def read():
        nonlocal pings
        while data := await reader.read(65536):
            client.receive_data(data)
            pings += sum(
                1
                for event in client.events_received()
                if getattr(event, "opcode", None) == Opcode.PING
            )
            writer.write(b"".join(client.data_to_send()))  # the pongs

    writer.write(b"".join(client.data_to_send()))
    reading = asyncio.ensure_future(read())
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if client_talks and client.handshake_exc is None and client.state.name == "OPEN":
            client.send_text(b'{"type":"heartbeat"}')
            writer.write(b"".join(client.data_to_send()))
        await asyncio.sleep(0.03)
    reading.cancel()
    writer.close()
    return pings


@pytest.mark.parametrize(
    ("client_talks", "server_talks", "pinged"),
    [(True, True, False), (False, True, True), (True, False, True), (False, False, True)],
)
async def test_only_a_socket_quiet_in_either_direction_is_pinged(
    client_talks, server_talks, pinged
):
    """A frame each way within the ping interval proves the peer alive and keeps proxies
    busy: no ping. A socket silent in either direction is pinged every interval as ever."""

    async def app(scope, receive, send):
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            if server_talks:
                await send({"type": "websocket.send", "text": "{}"})
            try:
                message = await asyncio.wait_for(receive(), 0.03)
            except TimeoutError:
                continue
            if message["type"] == "websocket.disconnect":
                return

    async with uvicorn_serving(app, ws_ping_interval=0.3, ws_ping_timeout=5) as (_, base):
        pings = await _pings_seen(f"{base}/", client_talks=client_talks, seconds=1.8)
    # Every 0.3 s for 1.8 s when pinged (about 6); none (one at most, for a stalled loop) when not.
    assert pings >= 3 if pinged else pings <= 1


async def test_a_socket_stops_reading_only_when_its_messages_wait_unread():
    """uvicorn's flow control stays (a socket whose application does not read stops being
    read), but a message the application takes at once no longer pauses the socket."""
    taking = asyncio.Event()
    taking.set()
    taken = []

    async def app(scope, receive, send):
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            await taking.wait()
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            taken.append(message["text"])

    async def until(condition):
        for _ in range(int(TIMEOUT / 0.01)):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("not within the timeout")

    async with uvicorn_serving(app) as (server, base), connect(f"{base}/") as ws:
        (protocol,) = server.server_state.connections
        pauses = []
        pause = protocol.transport.pause_reading
        protocol.transport.pause_reading = lambda: (pauses.append(1), pause())
        for n in range(20):  # heartbeats, each taken at once
            await ws.send(str(n))
            await until(lambda n=n: len(taken) == n + 1)
        assert pauses == []
        assert protocol.transport.is_reading()

        taking.clear()  # the application stops reading
        await asyncio.sleep(0.05)  # its receive may take one more
        for n in range(INBOX_LIMIT + 1):
            await ws.send(f"unread {n}")
        await until(lambda: not protocol.transport.is_reading())
        assert protocol.queue.qsize() >= INBOX_LIMIT

        taking.set()  # it reads again: so does the socket
        await until(lambda: len(taken) == 20 + INBOX_LIMIT + 1)
        assert protocol.transport.is_reading()
