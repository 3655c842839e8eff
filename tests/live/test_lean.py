"""The lean queue socket's own wiring (its protocol is tested with the consumer's tests, which
run on both): where other paths go, and a user set by a middleware around it."""

import os
import subprocess
import sys

import pytest
from channels.testing import WebsocketCommunicator

from ticketqueue import services
from ticketqueue.live.asgi import QueueSocketApp

from .conftest import TIMEOUT, in_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

ORIGIN = (b"origin", b"http://testserver")


async def other(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": scope["path"]})


async def test_other_paths_go_to_the_fallback():
    ws = WebsocketCommunicator(QueueSocketApp(other), "/ws/chat/", headers=[ORIGIN])
    connected, _ = await ws.connect(timeout=TIMEOUT)
    assert connected
    assert await ws.receive_from(timeout=TIMEOUT) == "/ws/chat/"
    await ws.disconnect()


@pytest.mark.parametrize("path", ["/ws/chat/", "/ws/queue/", "/ws/queue/a/b/", "/ws/queue/a b/"])
async def test_without_a_fallback_other_paths_are_refused(path):
    ws = WebsocketCommunicator(QueueSocketApp(), path, headers=[ORIGIN])
    connected, _ = await ws.connect(timeout=TIMEOUT)
    assert not connected


def ready_after(making: str) -> list[str]:
    """In a process of its own (this one's collector and modules are the whole suite's): what
    was frozen before ``making`` ran, whether something is after, whether the store backend
    is loaded."""
    script = (
        "import gc, sys, django; django.setup(); "
        "from ticketqueue.conf import queue_settings; "
        f"frozen = gc.get_freeze_count(); {making}; "
        "print(frozen, gc.get_freeze_count() > 0, "
        "queue_settings.STORE.__module__ in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    found = subprocess.run(  # noqa: S603 - this interpreter
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return found.stdout.split()


async def test_made_once_the_process_is_ready_for_a_burst():
    making = "from ticketqueue.live.asgi import QueueSocketApp; QueueSocketApp(); QueueSocketApp()"
    assert ready_after(making) == ["0", "True", "True"]


async def test_the_consumers_routes_make_the_process_ready_for_a_burst_too():
    # The Channels path: a site's asgi.py imports ticketqueue.routing for its URLRouter.
    assert ready_after("import ticketqueue.routing") == ["0", "True", "True"]


async def test_the_slug_is_read_under_the_root_path():
    slug = QueueSocketApp.slug
    assert slug({"path": "/ws/queue/big-sale_2/"}) == "big-sale_2"
    assert slug({"path": "/shop/ws/queue/big-sale/", "root_path": "/shop"}) == "big-sale"
    assert slug({"path": "/ws/queue/big-sale"}) is None


async def test_a_user_set_around_it_is_the_identity(make_queue, hub, visitor):
    class User:
        is_authenticated = True
        pk = 7

    def with_user(app):
        async def middleware(scope, receive, send):
            return await app(dict(scope, user=User()), receive, send)

        return middleware

    queue = await in_thread(make_queue)()
    ws = WebsocketCommunicator(
        with_user(QueueSocketApp()), f"/ws/queue/{queue.slug}/", headers=[ORIGIN]
    )
    connected, _ = await ws.connect(timeout=TIMEOUT)
    assert connected
    await ws.receive_json_from(timeout=TIMEOUT)
    await ws.send_json_to({"type": "join"})
    assert (await ws.receive_json_from(timeout=TIMEOUT))["position"] == 1
    assert (await in_thread(services.status)(queue, "user:7")).state == "waiting"
    await ws.disconnect()


@pytest.mark.parametrize(
    "origin",
    [
        None,
        b"http://testserver",
        b"https://testserver:8443",
        b"http://localhost:8000",
        b"https://evil.example",
        b"http://testserver.evil.example",
        b"null",
        b"not a url",
    ],
)
async def test_the_origin_check_answers_as_channels_validator(origin):
    from urllib.parse import urlparse

    from channels.security.websocket import AllowedHostsOriginValidator

    from ticketqueue.live.asgi import OriginCheck

    channels_says = AllowedHostsOriginValidator(None).valid_origin(
        None if origin is None else urlparse(origin.decode("latin1"))
    )
    check = OriginCheck()
    assert check(origin) is bool(channels_says)
    assert check(origin) is bool(channels_says)  # remembered: the same answer


async def test_the_origin_check_remembers_a_bounded_number_of_values():
    from ticketqueue.live.asgi import ORIGINS_KEPT, OriginCheck

    check = OriginCheck()
    for n in range(ORIGINS_KEPT * 3):
        assert not check(f"https://site{n}.example".encode())
    assert check(b"http://testserver")
    assert check._allowed.cache_info().currsize == ORIGINS_KEPT
