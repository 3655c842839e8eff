"""The lighter uvicorn protocol (ticketqueue.live.uvicorn): its queue and flag on their own,
then the queue socket's protocol through a real uvicorn server using it, on both the Channels
consumer and the lean application; last, its opening handshake against websockets' own."""

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


# -- the opening handshake, read once -----------------------------------------------------------


def _as_uvicorn_hands_it_over(*headers, request_line="GET /ws/queue/sale/ HTTP/1.1"):
    lines = [request_line, *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_BROWSER = (
    ("host", "127.0.0.1:8001"),
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"),
    ("upgrade", "websocket"),
    ("origin", "http://127.0.0.1:8001"),
    ("sec-websocket-version", "13"),
    ("accept-language", "en-US,en;q=0.9"),
    ("cookie", "tq_visitor=abc:def; sessionid=x"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("sec-websocket-extensions", "permessage-deflate; client_max_window_bits"),
    ("sec-websocket-protocol", "ticketqueue.v2"),
)


def _with(*changes, without=()):
    """_BROWSER with headers replaced (same name) or added, and ``without`` left out."""
    names = {name for name, _ in changes}
    kept = [(n, v) for n, v in _BROWSER if n not in names and n not in without]
    return (*kept, *changes)


#: Upgrades websockets accepts as they stand: the short path answers them.
PLAIN = {
    "a browser's, over Connection: Upgrade": _with(("connection", "Upgrade")),
    "Firefox's keep-alive, Upgrade": _with(("connection", "keep-alive, Upgrade")),
    "no subprotocol, no origin": _with(
        ("connection", "upgrade"), without={"sec-websocket-protocol", "origin"}
    ),
    "two subprotocols offered": _with(
        ("connection", "Upgrade"), ("sec-websocket-protocol", "ticketqueue.v2, chat")
    ),
    "Upgrade in capitals": _with(("connection", "Upgrade"), ("upgrade", "WebSocket")),
}
#: Anything else: websockets reads it and answers (or refuses) as it always did.
OTHER = {
    "version 12": _with(("connection", "Upgrade"), ("sec-websocket-version", "12")),
    "no version": _with(("connection", "Upgrade"), without={"sec-websocket-version"}),
    "a short key": _with(("connection", "Upgrade"), ("sec-websocket-key", "c2hvcnQ=")),
    "a key that is not base64": _with(("connection", "Upgrade"), ("sec-websocket-key", "?" * 24)),
    "two keys": _with(
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ),
    "no Upgrade": _with(("connection", "Upgrade"), without={"upgrade"}),
    "Upgrade: h2c": _with(("connection", "Upgrade"), ("upgrade", "h2c")),
    "Connection: close": _with(("connection", "close")),
    "an unusual Connection": _with(("connection", "Upgrade, HTTP2-Settings")),
    "two Origins": _with(("connection", "Upgrade"), ("origin", "http://a"), ("origin", "http://b")),
    "a malformed subprotocol": _with(("connection", "Upgrade"), ("sec-websocket-protocol", "a b")),
    "a body announced": _with(("connection", "Upgrade"), ("content-length", "5")),
    "an empty body announced": _with(("connection", "Upgrade"), ("content-length", "0")),
    "a header value beyond ASCII": _with(("connection", "Upgrade"), ("x-name", "café")),
}


def _websockets_reading(data):
    """What websockets' own ServerProtocol makes of ``data``: (request, response) or
    (None, what it wrote)."""
    from websockets.server import ServerProtocol

    reference = ServerProtocol(max_size=4096)
    reference.receive_data(data)
    events = reference.events_received()
    if not events:
        return None, b"".join(reference.data_to_send())
    return events[0], reference.accept(events[0])


def _lean_reading(data):
    from ticketqueue.live.uvicorn import LeanServerProtocol, upgrade_request

    conn = LeanServerProtocol(max_size=4096)
    request = upgrade_request(data)
    if request is None:
        conn.receive_data(data)
        events = conn.events_received()
        if not events:
            return None, b"".join(conn.data_to_send()), conn
        request = events[0]
    else:
        conn.take_request()
    return request, conn.accept(request), conn


def _answer(response):
    if isinstance(response, bytes):
        return response
    headers = [(k, v) for k, v in response.headers.raw_items() if k != "Date"]
    return response.status_code, response.reason_phrase, headers, response.body


@pytest.mark.parametrize("case", [*PLAIN, *OTHER])
async def test_the_handshake_is_read_and_answered_as_websockets_would(case):
    from ticketqueue.live.uvicorn import upgrade_request

    data = _as_uvicorn_hands_it_over(*(PLAIN | OTHER)[case])
    expected_request, expected = _websockets_reading(data)
    request, response, conn = _lean_reading(data)
    assert _answer(response) == _answer(expected)
    if expected_request is not None:
        assert (request.method, request.path, request.protocol) == (
            expected_request.method,
            expected_request.path,
            expected_request.protocol,
        )
        assert list(request.headers.raw_items()) == list(expected_request.headers.raw_items())
    # The short path is the one taken for a plain upgrade, and only for one.
    short = upgrade_request(data) is not None and conn._plain_answer(request) is not None
    assert short is (case in PLAIN)


async def test_after_the_short_handshake_frames_are_read_as_before():
    from websockets.frames import Frame, Opcode

    data = _as_uvicorn_hands_it_over(*PLAIN["a browser's, over Connection: Upgrade"])
    _, response, conn = _lean_reading(data)
    conn.send_response(response)
    assert conn.state.name == "OPEN"
    frame = Frame(Opcode.TEXT, b'{"type":"heartbeat"}').serialize(
        mask=True, extensions=[]
    )  # as a client sends it: masked
    conn.receive_data(frame[:5])
    conn.receive_data(frame[5:])
    (event,) = conn.events_received()
    assert (event.opcode, event.data) == (Opcode.TEXT, b'{"type":"heartbeat"}')


async def test_a_real_handshake_is_parsed_once_and_odd_ones_still_refused(monkeypatch):
    """Through a real uvicorn (permessage-deflate off, as docs/protocol.md has it): a client's
    upgrade never reaches websockets' request parser or header checks, and one websockets
    would refuse still gets websockets' refusal."""
    from websockets.server import ServerProtocol

    from ticketqueue.live import uvicorn as lean

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "ticketqueue.v2"})
        await send({"type": "websocket.send", "text": scope["subprotocols"][0]})
        await receive()

    calls = []
    read, check = lean.upgrade_request, ServerProtocol.process_request
    monkeypatch.setattr(lean, "upgrade_request", lambda data: calls.append(read(data)) or calls[-1])
    monkeypatch.setattr(
        ServerProtocol, "process_request", lambda *a: (calls.append("checked"), check(*a))[1]
    )
    async with uvicorn_serving(app, ws_per_message_deflate=False) as (_, base):
        async with connect(f"{base}/", subprotocols=["ticketqueue.v2"]) as ws:
            assert ws.subprotocol == "ticketqueue.v2"
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "ticketqueue.v2"
        # Read once, straight into a request, and answered without websockets' checks.
        (request,) = calls
        assert request.headers["Sec-WebSocket-Protocol"] == "ticketqueue.v2"
        calls.clear()

        host, port = base.removeprefix("ws://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            _as_uvicorn_hands_it_over(
                *_with(("connection", "Upgrade"), ("sec-websocket-version", "12")),
                request_line="GET / HTTP/1.1",
            )
        )
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Sec-WebSocket-Version" in answer
    assert calls[-1] == "checked"  # websockets' own checks refused it
