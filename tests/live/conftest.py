"""Live-update fixtures: a queue, visitors with signed cookies, sockets on the test project's
ASGI application (origin check and auth included) and the hub, closed after each test.

Socket tests run on both ways of serving the queue socket (the ``socket_app`` fixture): the
Channels consumer behind the documented middleware stack, and the lean application."""

import asyncio
import contextlib
import json
import socket
import uuid

import channels.testing.application
import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import close_old_connections
from websockets.asyncio.client import connect

from ticketqueue import live, services
from ticketqueue.identity import VISITOR_COOKIE, new_visitor_cookie
from ticketqueue.models import Queue
from ticketqueue.store import get_store, reset_store

from ..conftest import drop_store
from ..servers import asgi_server, server_settings, store_for_server  # noqa: F401

#: Long enough for a loaded machine; every wait ends as soon as its message arrives.
TIMEOUT = 10


@pytest.fixture(autouse=True)
def database_cleanup_as_in_production(monkeypatch):
    """channels' communicator swaps database_sync_to_async's connection clean-up for a no-op
    (made for TestCase's one shared connection). The consumer works in a thread pool, as in
    production, and transactional tests need each thread's connection closed: keep it."""
    monkeypatch.setattr(channels.testing.application, "no_op", close_old_connections)


@pytest.fixture
def live_settings(settings):
    """Own key prefix (so no other test run hears our broadcasts), no coalescing, and resyncs
    far enough away that only the tests that call them see them."""
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "KEY_PREFIX": f"tqlive{uuid.uuid4().hex[:8]}",
        "UPDATE_INTERVAL": 0,
        "RESYNC_INTERVAL": 3600,
    }
    reset_store()
    yield settings
    drop_store(get_store())
    reset_store()


@pytest.fixture
def make_queue(live_settings):
    def make(**fields):
        fields.setdefault("slug", f"sale-{uuid.uuid4().hex[:6]}")
        fields.setdefault("name", "The sale")
        fields.setdefault("mode", "always")
        queue = Queue.objects.create(**fields)
        services.configure(queue)
        return queue

    return make


@pytest_asyncio.fixture
async def hub(live_settings):
    """The hub is made by the first socket (after every settings fixture); closed after."""
    yield
    await live.shutdown()


class Visitor:
    """One anonymous identity: its signed cookie opens as many sockets as it likes."""

    def __init__(self):
        visitor, self.cookie = new_visitor_cookie()
        self.identity = f"anon:{visitor}"

    def socket(self, queue, origin=b"http://testserver"):
        headers = [(b"cookie", f"{VISITOR_COOKIE}={self.cookie}".encode())]
        if origin:
            headers.append((b"origin", origin))
        return Socket(queue.slug, headers)


#: The test project's applications (tests/asgi.py) the socket tests run on.
SOCKET_APPS = {"consumer": "application", "lean": "lean_application"}


@pytest_asyncio.fixture(params=sorted(SOCKET_APPS))
async def served(request, make_queue, hub):
    """The test project's application (consumer or lean) under a real uvicorn server with
    ticketqueue's lighter protocol (the path docs/protocol.md recommends first)."""
    import tests.asgi

    application = getattr(tests.asgi, SOCKET_APPS[request.param])
    async with uvicorn_serving(application, ws_max_size=4096, ws_per_message_deflate=False) as up:
        yield up


@contextlib.asynccontextmanager
async def uvicorn_serving(app, **options):
    """``app`` under a real uvicorn server with ticketqueue's lighter protocol, on a free
    loopback port, with uvicorn ``options``; yields the server and its ``ws://`` base."""
    import uvicorn

    from ticketqueue.live.uvicorn import WebSocketProtocol

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(64)
    config = uvicorn.Config(
        app, ws=WebSocketProtocol, lifespan="off", log_level="warning", **options
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[listening]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield server, f"ws://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, TIMEOUT)
        listening.close()


def socket_to(base, slug, cookie, origin="http://testserver", subprotocols=None):
    """A real WebSocket client's socket to ``base`` (``served``); ``subprotocols``: offered
    at the handshake (``["ticketqueue.v2"]`` for protocol version 2)."""
    return connect(
        f"{base}/ws/queue/{slug}/",
        additional_headers={"Cookie": f"tq_visitor={cookie}", "Origin": origin},
        open_timeout=TIMEOUT,
        subprotocols=subprotocols,
    )


async def next_message(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


@pytest.fixture(params=sorted(SOCKET_APPS))
def socket_app(request, monkeypatch):
    """Runs a socket test on the Channels consumer and on the lean application."""
    monkeypatch.setattr(Socket, "app", SOCKET_APPS[request.param])
    return request.param


class Socket(WebsocketCommunicator):
    #: Which application of tests/asgi.py the socket connects to (see ``socket_app``).
    app = SOCKET_APPS["consumer"]

    def __init__(self, slug, headers):
        import tests.asgi

        super().__init__(getattr(tests.asgi, self.app), f"/ws/queue/{slug}/", headers=headers)

    async def open(self):
        connected, _ = await self.connect(timeout=TIMEOUT)
        assert connected
        return self

    async def next(self):
        return await self.receive_json_from(timeout=TIMEOUT)

    async def next_of(self, kind):
        """The next message of this type, skipping others (ordering is asserted elsewhere)."""
        while True:
            message = await self.next()
            if message["type"] == kind:
                return message

    async def next_place(self):
        """The next ``queue_update`` about this person's place. A broadcast sent before the
        join was answered (a tick's, say) can arrive first: it says ``state`` null; skipped."""
        while (update := await self.next_of("queue_update"))["state"] is None:
            pass
        return update

    async def send(self, **message):
        await self.send_json_to(message)


@pytest.fixture
def visitor():
    return Visitor


def in_thread(func):
    return database_sync_to_async(func, thread_sensitive=False)


async def heartbeats_written(queue):
    """Wait until this process's room has written every heartbeat its sockets said (the room
    writes them in batches, within RESYNC_PERIOD)."""
    from ticketqueue.live import get_hub

    room = get_hub().rooms.get(queue.store_id)
    if room is not None:
        await room.flush_heartbeats()


async def heartbeat_heard(sock, queue, identity, clock):
    """The page's heartbeat on ``sock`` at ``clock``'s time (the test patches services.clock
    and QueueSocket.clock with it), once the server has written it to presence."""
    from ticketqueue import services

    await sock.send(type="heartbeat")
    for _ in range(200):
        await heartbeats_written(queue)
        if await in_thread(services.connected)(queue, [identity], clock() + 70):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the heartbeat was never written")
