"""A socket process near its descriptor limit turns new sockets away at the handshake (503,
Retry-After, ``server_busy``), logs that at most once a second, and keeps serving the sockets
it holds: a real uvicorn process started with a low ``ulimit -n``, more sockets than it allows."""

import asyncio
import json
import os
import resource
import subprocess
import sys
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ticketqueue import services
from ticketqueue.identity import new_visitor_cookie
from ticketqueue.models import Queue

from ..servers import ROOT, _listening_socket

pytestmark = pytest.mark.django_db(transaction=True)

#: The server's descriptor limit: room for a few dozen sockets besides its own files.
LIMIT = 160
ATTEMPTS = 150
TIMEOUT = 15


def limited():
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, hard))


@pytest.fixture
def small_server(store_for_server, tmp_path):
    from django.db import connection

    sock = _listening_socket()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PGDATABASE": connection.settings_dict["NAME"],
        "PYTHONPATH": str(ROOT),
    }
    with open(log, "w") as stderr:
        server = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--fd",
                str(sock.fileno()),
                "--ws",
                "ticketqueue.live.uvicorn:WebSocketProtocol",
                "--ws-max-size",
                "8192",
                "--lifespan",
                "off",
                "--no-access-log",
                "tests.asgi:lean_application",
            ],
            env=env,
            cwd=ROOT,
            pass_fds=[sock.fileno()],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=limited,  # noqa: PLW1509 - setrlimit in the child only, before exec
        )
    try:
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}", server, log
    finally:
        server.terminate()
        server.wait(20)
        sock.close()


async def crowd(base, slug):
    """Open ATTEMPTS sockets one after another, keeping those accepted."""
    held, refused = [], []
    for _ in range(ATTEMPTS):
        _visitor, cookie = new_visitor_cookie()
        try:
            ws = await connect(
                f"{base}/ws/queue/{slug}/",
                additional_headers={
                    "Cookie": f"tq_visitor={cookie}",
                    "Origin": "http://testserver",
                },
                open_timeout=TIMEOUT,
            )
        except InvalidStatus as exc:
            response = exc.response
            refused.append(
                (
                    response.status_code,
                    response.headers.get("Retry-After"),
                    json.loads(response.body or b"{}").get("code"),
                )
            )
            continue
        json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))  # its first status
        held.append(ws)
    return held, refused


async def still_served(held):
    """Every socket held is still answered: each joins and hears its place."""
    places = []
    for ws in held:
        await ws.send(json.dumps({"type": "join"}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if message.get("type") == "queue_update" and message.get("state") == "waiting":
                places.append(message["position"])
                break
    for ws in held:
        await ws.close()
    return places


def test_a_full_process_refuses_new_sockets_cheaply_and_serves_its_own(small_server):
    base, server, log = small_server
    queue = Queue.objects.create(slug="big", name="Big", mode="always", capacity=1)
    services.configure(queue)

    async def run():
        started = time.monotonic()
        held, refused = await crowd(base, queue.slug)
        spent = time.monotonic() - started
        return held, refused, spent, await still_served(held)

    held, refused, spent, places = asyncio.run(run())
    assert server.poll() is None  # alive
    assert 20 <= len(held) < LIMIT, len(held)
    assert len(refused) == ATTEMPTS - len(held) and len(refused) >= 20
    assert set(refused) == {(503, "5", "server_busy")}
    assert sorted(places) == list(range(1, len(held) + 1))  # each held socket took its place
    lines = [line for line in log.read_text().splitlines() if "sockets refused" in line]
    assert 1 <= len(lines) <= spent + 2, (len(lines), spent)
    assert "Too many open files" not in log.read_text()
