"""WebSocket login for API clients: a simplejwt bearer token on the handshake."""

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections
from rest_framework_simplejwt.tokens import AccessToken

from demo_project.shop.ws_auth import JWTAuthMiddleware
from ticketqueue import services

from ..live.conftest import TIMEOUT, in_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest_asyncio.fixture(autouse=True)
async def _close_thread_connections():
    """Channels runs ORM calls in a worker thread whose connection outlives the test."""
    yield
    await sync_to_async(connections.close_all)()


async def whoami(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    user = scope.get("user")
    await send({"type": "websocket.send", "text": str(getattr(user, "pk", None))})


def communicator(headers):
    return WebsocketCommunicator(JWTAuthMiddleware(whoami), "/ws/", headers=headers)


async def test_a_valid_access_token_logs_the_socket_in():
    user = await database_sync_to_async(get_user_model().objects.create_user)("app")
    token = str(AccessToken.for_user(user))
    ws = communicator([(b"authorization", f"Bearer {token}".encode())])
    connected, _ = await ws.connect()
    assert connected
    # The socket's user is the token's, read without the database.
    assert await ws.receive_from() == str(user.pk)
    await ws.disconnect()


async def test_a_bad_token_is_refused_not_downgraded_to_anonymous():
    ws = communicator([(b"authorization", b"Bearer not-a-token")])
    connected, code = await ws.connect()
    assert not connected and code == 4401


async def test_no_token_leaves_the_scope_alone():
    ws = communicator([])
    connected, _ = await ws.connect()
    assert connected
    assert await ws.receive_from() == "None"
    await ws.disconnect()


def demo_socket(queue, headers):
    """A socket on the demo's own ASGI application (demo_project/asgi.py)."""
    from demo_project.asgi import application

    return WebsocketCommunicator(application, f"/ws/queue/{queue.slug}/", headers=headers)


async def test_the_demo_queue_socket_knows_an_app_by_its_token(make_queue, hub):
    queue = await in_thread(make_queue)()
    user = await database_sync_to_async(get_user_model().objects.create_user)("app")
    token = str(AccessToken.for_user(user))
    ws = demo_socket(
        queue, [(b"authorization", f"Bearer {token}".encode()), (b"origin", b"http://testserver")]
    )
    connected, _ = await ws.connect(timeout=TIMEOUT)
    assert connected
    await ws.receive_json_from(timeout=TIMEOUT)
    await ws.send_json_to({"type": "join"})
    assert (await ws.receive_json_from(timeout=TIMEOUT))["position"] == 1
    # In line as the token's user, not as an anonymous visitor.
    assert (await in_thread(services.status)(queue, f"user:{user.pk}")).state == "waiting"
    await ws.disconnect()


@pytest.mark.parametrize("origin", [b"https://evil.example", None])
async def test_the_demo_queue_socket_refuses_a_foreign_or_missing_origin(make_queue, hub, origin):
    queue = await in_thread(make_queue)()
    ws = demo_socket(queue, [(b"origin", origin)] if origin else [])
    connected, _ = await ws.connect(timeout=TIMEOUT)
    assert not connected
