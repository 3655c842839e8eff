"""A real ASGI server for tests that need one (the browser, the abuse test): daphne in a
subprocess on the test database and Redis (the production shape), or, on the one-process
embedded store, uvicorn in a thread of this process (where the in-process store and broadcast
live). Either way the listening socket is bound here first, so the first request waits in its
backlog: no polling for "up". Test packages import the fixtures into their conftest."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ticketqueue.identity import VISITOR_COOKIE
from ticketqueue.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[1]


def _listening_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@pytest.fixture
def store_for_server(transactional_db, live_store):
    """The store the server shares with the test (after the database, so emptied before it)."""
    return live_store


@pytest.fixture
def server_settings():
    """More of TICKETQUEUE for the server (a test overrides this fixture, or fills it in)."""
    return {}


@pytest.fixture(params=["application", "lean_application"])
def asgi_server(request, store_for_server, transactional_db, server_settings, settings):
    """Base URL of the test project's ASGI application (tests/asgi.py) on a real server: the
    queue socket as the Channels consumer, then as the lean application."""
    from django.db import connection

    sock = _listening_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    if server_settings:
        settings.TICKETQUEUE = {**settings.TICKETQUEUE, **server_settings}
    if isinstance(store_for_server, MemoryStore):
        yield from _uvicorn_in_thread(sock, base, request.param)
        return
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        # The server uses the test database as its database, and inherits the run id (so
        # the Redis key prefix) of this run through the environment.
        "PGDATABASE": connection.settings_dict["NAME"],
        "PYTHONPATH": str(ROOT),
        "TQ_TEST_SETTINGS": json.dumps(server_settings),
    }
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), f"tests.asgi:{request.param}"],
        env=env,
        cwd=ROOT,
        pass_fds=[sock.fileno()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, errors = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            _, errors = server.communicate()
        sock.close()
        if b"Traceback" in errors:
            print(errors.decode(errors="replace"), file=sys.stderr)


def _uvicorn_in_thread(sock, base, name):
    import uvicorn

    import tests.asgi

    config = uvicorn.Config(
        getattr(tests.asgi, name), ws="websockets-sansio", lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def request(base, method, path, cookie=None):
    """(status, visitor cookie value it set or None) of one HTTP request to the server."""
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Accept": "application/json"}
    if cookie:
        headers["Cookie"] = f"{VISITOR_COOKIE}={cookie}"
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    response.read()
    jar = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        jar.load(header)
    conn.close()
    minted = jar[VISITOR_COOKIE].value if VISITOR_COOKIE in jar else None
    return response.status, minted
