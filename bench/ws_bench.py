"""Live-update benchmark: N WebSocket clients on ONE ASGI process, under daphne and uvicorn, and
the same N clients on a bare `websockets` broadcast server as the baseline.

For each server and N it measures: the time from a tick to each client's message (p50, p99),
messages delivered per second, Redis commands per tick (INFO commandstats of a private
redis-server, so nothing else is counted) and the server's memory per idle connection.
Writes bench/results/ws.json and the "Live updates (issue 3)" section of docs/benchmarks.md.

    .venv/bin/python bench/ws_bench.py [--quick] [--sizes 1000,5000,10000]
                                        [--servers bare,daphne,uvicorn,uvicorn-lean,...]
                                        [--ticks 8] [--results FILE]
    .venv/bin/python bench/ws_bench.py --profile 500,1500 --servers uvicorn,uvicorn-lean
                                        [--verbose]

--quick (CI): 200 clients, written to bench/results/ws_quick.json only. --results FILE: the
JSON goes there and the docs are left alone (for trying things). --ticks 0: memory only.

A server is named by a spec: ``bare``, ``daphne[-raw|-lean]`` or ``uvicorn[-raw|-lean]``
(``-raw``: a minimal ASGI app, the server's own cost; ``-lean``: the lean application; none:
the Channels consumer), then ``+option=value`` pairs: lower-case ones are uvicorn.Config
arguments, upper-case ones the server's environment, and ``+tqws`` is
``+ws=ticketqueue.live.uvicorn:WebSocketProtocol``. Example:
``uvicorn-lean+tqws+ws_ping_interval=none``. A full run also measures OPTION_SERVERS for memory
only and profiles PROFILE_SERVERS (--profile: tracemalloc in the server, by component).

Roles: this one script is also the server (``--role asgi|bare``) and the load generator
(``--role clients``), each in its own process; the orchestrator talks to the load generator
over stdin/stdout, one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import gc
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "ws.json"
#: --quick (CI) keeps its own file and leaves the full results and the docs alone.
QUICK_RESULTS = ROOT / "bench" / "results" / "ws_quick.json"
DOCS = ROOT / "docs" / "benchmarks.md"
HEADING = "## Live updates (issue 3)"
DATABASE = "ticketqueue_bench"
BARE_CHANNEL = "bench:bare"
#: How the orchestrator starts a server process (a tracing wrapper may stand in).
SERVER_CMD = [os.environ.get("WS_BENCH_SERVER", __file__)]
ORIGIN = "http://127.0.0.1"
#: Clients connected before the memory baseline is read (imports, first-connection costs).
WARM = 20
#: The live rows of a full run (see parse_spec for the names).
SERVERS = [
    "bare",
    "daphne-raw",
    "daphne",
    "uvicorn-raw",
    "uvicorn",
    "uvicorn-lean",
    "uvicorn-raw+tqws",
    "uvicorn+tqws",
    "uvicorn-lean+tqws",
]
#: --quick's servers: the bare harness, the Channels consumer under daphne and uvicorn, and the
#: lean application on our protocol class (the path docs/protocol.md recommends first).
QUICK_SERVERS = ["bare", "daphne", "uvicorn", "uvicorn-lean+tqws"]
#: Memory-only rows of a full run: what uvicorn's options and the allocator change. The
#: ``PYTHONPATH`` ones need wsproto / httptools / uvloop, which the project does not install:
#: ``pip install --target /tmp/ws-extra wsproto httptools uvloop``; rows that fail are skipped.
OPTION_SERVERS = [
    "uvicorn-raw",
    "uvicorn-raw+ws=websockets",
    "uvicorn-raw+ws=wsproto+http=h11+loop=asyncio+PYTHONPATH=/tmp/ws-extra",
    "uvicorn-raw+http=httptools+PYTHONPATH=/tmp/ws-extra",
    "uvicorn-raw+loop=uvloop+PYTHONPATH=/tmp/ws-extra",
    "uvicorn-raw+ws_ping_interval=none",
    "uvicorn-raw+proxy_headers=false",
    "uvicorn-raw+PYTHONMALLOC=malloc",
    "uvicorn-raw+MALLOC_ARENA_MAX=2",
    "uvicorn-raw+tqws",
    "uvicorn-lean",
    "uvicorn-lean+tqws",
    "uvicorn-lean+tqws+proxy_headers=false",
    "uvicorn-lean+ws=wsproto+http=h11+loop=asyncio+PYTHONPATH=/tmp/ws-extra",
]
#: --profile in a full run: idle sockets before and after.
PROFILE_SIZES = (500, 1500)
PROFILE_SERVERS = ["bare", "uvicorn-raw", "uvicorn", "uvicorn-lean", "uvicorn-lean+tqws"]
#: ``+tqws``: uvicorn with ticketqueue's lighter protocol class.
ALIASES = {"tqws": "ws=ticketqueue.live.uvicorn:WebSocketProtocol"}
#: --profile: set in a server's environment, it traces allocations and dumps a tracemalloc
#: snapshot to "<value>.<k>" at the k-th settle.
TRACE_ENV = "WS_BENCH_TRACE"
TRACE_FRAMES = 30
#: Connection attempts in flight at once from the load generator.
CONNECT_CONCURRENCY = 200
#: Admissions per tick, the same at every N: what a tick costs Redis depends on how many it
#: admits, and must not depend on how many sockets listen.
ADMIT_PER_TICK = 10
#: Seconds between ticks: more than UPDATE_INTERVAL (2 s), so no update is held back.
TICK_SPACING = 2.5
#: Connection and script set-up, once per connection: not part of a tick's work.
SET_UP_COMMANDS = {"info", "hello", "client|setname", "client|setinfo", "script|load", "ping"}
#: A frame the size of a real queue_update, for the bare server.
BARE_FRAME = (
    '{"type":"queue_update","queue_state":"open","state":"waiting","position":4711,'
    '"waiting":10000,"active":100,"eta_seconds":95}'
)


# -- shared helpers --------------------------------------------------------------------------


def raise_nofile() -> int:
    """As many file descriptors as the hard limit allows (10k sockets need 10k+)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def configure_django(redis_url: str) -> None:
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench-only-not-secret",  # noqa: S106
        DEBUG=False,
        USE_TZ=True,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF="ticketqueue.urls",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "channels",
            "rest_framework",
            "ticketqueue",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": DATABASE,
                "USER": os.environ.get("PGUSER", "postgres"),
                "HOST": os.environ.get("PGHOST", "127.0.0.1"),
                "PORT": os.environ.get("PGPORT", "5432"),
            }
        },
        TICKETQUEUE={
            "STORE": "ticketqueue.store.redis.RedisStore",
            "REDIS_URL": redis_url,
            "KEY_PREFIX": "tqbench",
            # The defaults a site gets (resyncs, throttles), behind one proxy: each socket's
            # handshake carries its own address in X-Forwarded-For, as a crowd's would.
            "TRUSTED_PROXIES": 1,
        },
        LOGGING_CONFIG=None,
    )


def asgi_application() -> Any:
    """The documented set-up (docs/protocol.md), WebSockets only."""
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator

    from ticketqueue.routing import websocket_urlpatterns

    return ProtocolTypeRouter(
        {
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            )
        }
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def parse_options(text: str) -> dict[str, Any]:
    """``key=value+key=value``: lower-case keys are uvicorn.Config arguments, upper-case ones
    the server process's environment (PYTHONMALLOC, MALLOC_ARENA_MAX, ...)."""
    words = {"none": None, "true": True, "false": False}
    options: dict[str, Any] = {}
    for item in filter(None, text.split("+")):
        key, _, value = ALIASES.get(item, item).partition("=")
        parsed: Any = words.get(value.lower(), value)
        if isinstance(parsed, str) and not key.isupper():
            with contextlib.suppress(ValueError):
                parsed = float(value) if "." in value else int(value)
        options[key] = parsed
    return options


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """A server row: ``bare``, ``daphne[-raw]`` or ``uvicorn[-raw]``, then ``+option=value``
    pairs (``uvicorn+ws=wsproto+ws_ping_interval=none``, ``uvicorn-raw+PYTHONMALLOC=malloc``)."""
    base, _, options = spec.partition("+")
    return base, parse_options(options)


def address(index: int) -> str:
    """The address socket ``index`` comes from (its X-Forwarded-For): one per person."""
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


def settle_on_signal() -> None:
    """--profile only: on SIGUSR1, collect garbage, give freed memory back to the OS, dump a
    tracemalloc snapshot and say "settled" on stdout. Measured runs never signal: the ticks
    and the memory figures are taken from the server as the connection storm left it."""

    trace = os.environ.get(TRACE_ENV)
    if trace:
        import tracemalloc

        tracemalloc.start(TRACE_FRAMES)
    taken = 0

    def settle(signum: int, frame: Any) -> None:
        nonlocal taken
        gc.collect()
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        if trace:  # --profile: what Python allocated, by traceback, at every settle
            import tracemalloc

            taken += 1
            tracemalloc.take_snapshot().dump(f"{trace}.{taken}")
        sys.stdout.write("settled\n")
        sys.stdout.flush()

    signal.signal(signal.SIGUSR1, settle)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# -- role: the ASGI server -------------------------------------------------------------------


async def raw_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The least an ASGI app can do with a socket: accept it, greet it, hold it. Run under
    daphne or uvicorn it shows what the server itself costs per idle connection."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": BARE_FRAME})
    while (await receive())["type"] != "websocket.disconnect":
        pass


def serve_asgi(server: str, fd: int, redis_url: str, ws: str, options: str = "") -> None:
    raise_nofile()
    settle_on_signal()
    kind, _, variant = server.partition("-")
    if kind == "daphne":
        import daphne.server  # noqa: F401 - installs the asyncio reactor before anything else
    configure_django(redis_url)
    import django

    django.setup()
    if variant == "raw":
        application = raw_application
    elif variant == "lean":
        from ticketqueue.routing import QueueSocketApp

        application = QueueSocketApp()
    else:
        application = asgi_application()
    uvicorn_options = {k: v for k, v in parse_options(options).items() if not k.isupper()}
    if kind == "daphne":
        from daphne.server import Server

        Server(
            application=application,
            endpoints=[f"fd:fileno={fd}"],
            verbosity=0,
            websocket_handshake_timeout=120,
            websocket_max_message_size=4096,
            websocket_max_frame_size=4096,
        ).run()
    else:
        import uvicorn

        config = uvicorn.Config(
            application,
            **{
                "ws": ws,
                "ws_per_message_deflate": False,
                "ws_max_size": 4096,
                "lifespan": "off",
                "log_level": "warning",
                "access_log": False,
                "backlog": 4096,
                **uvicorn_options,
            },
        )
        uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


# -- role: the bare websockets broadcast server (baseline) ------------------------------------


def serve_bare(fd: int, redis_url: str) -> None:
    raise_nofile()
    settle_on_signal()
    asyncio.run(_bare(fd, redis_url))


async def _bare(fd: int, redis_url: str) -> None:
    import redis.asyncio as aioredis
    from websockets.asyncio.server import broadcast, serve

    sockets: set[Any] = set()

    async def handler(ws: Any) -> None:
        sockets.add(ws)
        try:
            await ws.send(BARE_FRAME)
            await ws.wait_closed()
        finally:
            sockets.discard(ws)

    listening = socket.socket(fileno=fd)
    async with serve(handler, sock=listening, compression=None, max_size=4096):
        client = aioredis.Redis.from_url(redis_url)
        pubsub = client.pubsub()
        await pubsub.subscribe(BARE_CHANNEL)
        async for message in pubsub.listen():
            if message["type"] == "message":
                broadcast(sockets, message["data"].decode())


# -- role: the load generator ----------------------------------------------------------------


class _Client(asyncio.Protocol):
    """A minimal WebSocket client: the handshake, then frames parsed straight off the socket.

    A library client spends a coroutine step (or more) per message; with 10,000 of them in one
    process the load generator, not the server, would set the pace. Server frames are
    unmasked; the only frame this client sends is the pong a server ping asks for.
    """

    def __init__(self, index: int, host: str, path: str, cookie: str, fleet: _Fleet) -> None:
        self.index = index
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Origin: {ORIGIN}\r\nCookie: tq_visitor={cookie}\r\n"
            f"X-Forwarded-For: {address(index)}\r\n\r\n"
        ).encode()
        self.fleet = fleet
        self.buffer = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.settled: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.settled.done():
            self.settled.set_result(False)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buffer[:end].split(b"\r\n", 1)[0]:
                self.settled.set_result(False)
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            del buffer[: end + 4]
        while (frame := pop_frame(buffer)) is not None:
            opcode, payload = frame
            if opcode == 0x1:
                self.fleet.frame(self, payload)
            elif opcode == 0x9 and self.transport is not None:  # ping: pong, masked by zeros
                self.transport.write(bytes([0x8A, 0x80 | len(payload), 0, 0, 0, 0]) + payload)
            elif opcode == 0x8 and self.transport is not None:
                self.transport.close()


def pop_frame(buffer: bytearray) -> tuple[int, bytes] | None:
    """The first whole server frame in ``buffer`` (opcode, payload), taken out of it; None
    while the frame is not all there. Server frames are unmasked (RFC 6455 5.2)."""
    if len(buffer) < 2:
        return None
    opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, offset = int.from_bytes(buffer[2:4], "big"), 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, offset = int.from_bytes(buffer[2:10], "big"), 10
    if len(buffer) < offset + length:
        return None
    payload = bytes(buffer[offset : offset + length])
    del buffer[: offset + length]
    return opcode, payload


class _Fleet:
    """Every client of the load generator, and the arrival time of every message."""

    def __init__(self, total: int, warm: int) -> None:
        self.total = total
        self.warm = warm
        self.arrivals: list[tuple[int, float, int]] = []  # (client, time, 1 if granted)
        self.greeted: set[int] = set()
        self.failed: list[str] = []
        self.warm_greeted = asyncio.Event()
        self.everyone = asyncio.Event()

    def frame(self, client: _Client, payload: bytes) -> None:
        now = time.time()
        if client.index in self.greeted:
            self.arrivals.append((client.index, now, 1 if b'"granted"' in payload[:20] else 0))
            return
        self.greeted.add(client.index)  # the first frame: the place on connecting
        if not client.settled.done():
            client.settled.set_result(True)
        self._check()

    def fail(self, reason: str) -> None:
        self.failed.append(reason)
        self._check()

    def _check(self) -> None:
        done = len(self.greeted) + len(self.failed)
        if done >= self.warm:
            self.warm_greeted.set()
        if done >= self.total:
            self.everyone.set()


def run_clients(url: str, cookies_file: str, warm: int = WARM) -> None:
    raise_nofile()
    cookies = json.loads(Path(cookies_file).read_text())
    asyncio.run(_clients(url, cookies, warm))


def _say(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _clients(url: str, cookies: list[str], warm: int = WARM) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())

    threading.Thread(target=read_stdin, daemon=True).start()
    hostport, _, path = url.removeprefix("ws://").partition("/")
    host, port = hostport.split(":")
    fleet = _Fleet(len(cookies), min(warm, len(cookies)))
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    clients: list[_Client] = []

    async def connect(index: int, cookie: str) -> None:
        async with gate:  # handshakes in flight at once, not connections
            try:
                _, client = await loop.create_connection(
                    lambda: _Client(index, hostport, "/" + path, cookie, fleet), host, int(port)
                )
                clients.append(client)
                if not await asyncio.wait_for(client.settled, 300):
                    fleet.fail("refused")
            except Exception as exc:  # noqa: BLE001 - counted and reported
                fleet.fail(type(exc).__name__)

    started = time.time()
    warm = fleet.warm
    tasks = [asyncio.create_task(connect(i, c)) for i, c in enumerate(cookies[:warm])]
    await fleet.warm_greeted.wait()
    _say(event="warm", clients=warm)
    assert await commands.get() == "go"
    tasks += [asyncio.create_task(connect(i, c)) for i, c in enumerate(cookies) if i >= warm]
    await fleet.everyone.wait()
    _say(
        event="ready",
        connected=len(fleet.greeted),
        failed=len(fleet.failed),
        errors=sorted(set(fleet.failed)),
        seconds=time.time() - started,
    )
    while True:
        command = await commands.get()
        if command == "count":
            _say(event="count", count=len(fleet.arrivals))
        elif command == "report":
            _say(event="report", arrivals=fleet.arrivals, failed=len(fleet.failed))
        elif command == "quit":
            break
    for client in clients:
        if client.transport is not None:
            client.transport.abort()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- the orchestrator ------------------------------------------------------------------------


@contextmanager
def private_redis():
    """A redis-server of our own: its commandstats count only this benchmark."""
    import redis

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(  # noqa: S603
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxclients",
            "1000",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.time() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield url, client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def ensure_database() -> None:
    import psycopg
    from django.core.management import call_command

    with psycopg.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        user=os.environ.get("PGUSER", "postgres"),
        dbname="postgres",
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    call_command("migrate", verbosity=0)


def make_queue(n: int) -> tuple[Any, list[str]]:
    """A queue with n waiting entries, one anonymous visitor each; rows first, then the store
    is rebuilt from them (the durable path), which is far quicker than n joins."""
    from ticketqueue import services
    from ticketqueue.identity import new_visitor_cookie
    from ticketqueue.models import Entry, Queue

    queue = Queue.objects.create(
        slug=f"bench-{uuid.uuid4().hex[:8]}", name="bench", mode="always", purchase_window=3600
    )
    now = datetime.now(tz=UTC)
    cookies, rows = [], []
    for seq in range(1, n + 1):
        visitor, signed = new_visitor_cookie()
        cookies.append(signed)
        rows.append(
            Entry(
                queue=queue,
                identity=f"anon:{visitor}",
                seq=seq,
                order=float(seq),
                state="waiting",
                joined_at=now,
            )
        )
    Entry.objects.bulk_create(rows, batch_size=5000)
    services.rebuild(queue)
    return queue, cookies


def command_calls(client: Any) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"])
        for name, stats in client.info("commandstats").items()
    }


class LoadGenerator:
    """A load-generator process (``script --role clients ... --cookies FILE``), driven over
    its stdin and stdout one JSON object per line; shared by the socket benches."""

    def __init__(self, script: str, args: list[str], cookies: list[str]) -> None:
        self.file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
        json.dump(cookies, self.file)
        self.file.close()
        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, script, "--role", "clients", *args, "--cookies", self.file.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def tell(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def hear(self, event: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the load generator stopped before {event!r}")
            message = json.loads(line)
            if message["event"] == event:
                return message

    def close(self) -> None:
        try:
            self.tell("quit")
            self.proc.wait(timeout=60)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        os.unlink(self.file.name)


class Clients(LoadGenerator):
    def __init__(self, url: str, cookies: list[str], warm: int = WARM) -> None:
        super().__init__(__file__, ["--url", url, "--warm", str(warm)], cookies)

    def count(self) -> int:
        self.tell("count")
        return int(self.hear("count")["count"])


def run_one(
    server: str,
    n: int,
    ticks: int,
    redis_url: str,
    redis_client: Any,
    ws_impl: str,
    *,
    warm: int = WARM,
    trace: str | None = None,
) -> dict[str, Any]:
    """One server spec (``name[+option=value...]``, see parse_spec) with n clients. With
    ``trace`` (a path prefix) the server dumps tracemalloc snapshots at ``warm`` and n idle
    connections, and nothing else is measured."""
    from ticketqueue import services

    base, options = parse_spec(server)
    env = {**os.environ, **{k: str(v) for k, v in options.items() if k.isupper()}}
    if trace:
        env[TRACE_ENV] = trace
    raw = base.endswith("-raw")  # memory only: the server's own floor
    memory_only = raw or trace is not None or ticks == 0
    queue, cookies = make_queue(n) if base != "bare" and not raw else (None, ["-"] * n)
    admit = ADMIT_PER_TICK
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(4096)
    port = listening.getsockname()[1]
    role = ["--role", "bare"] if base == "bare" else ["--role", "asgi", "--server", base]
    opts = server.partition("+")[2]
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            *SERVER_CMD,
            *role,
            "--fd",
            str(listening.fileno()),
            "--redis",
            redis_url,
            "--ws",
            ws_impl,
            "--options",
            opts,
        ],
        pass_fds=[listening.fileno()],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )

    def server_rss() -> int:
        if trace:  # --profile: a tracemalloc snapshot at this point
            proc.send_signal(signal.SIGUSR1)
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "settled":
                raise RuntimeError("the server did not take its snapshot")
        return rss_kib(proc.pid)

    path = f"/ws/queue/{queue.slug}/" if queue is not None else "/"
    clients = Clients(f"ws://127.0.0.1:{port}{path}", cookies, warm)
    result: dict[str, Any] = {"server": server, "clients": n}

    def watchdog() -> None:
        # A server that dies would leave the load generator waiting on its handshakes.
        if proc.wait() != 0 and clients.proc.poll() is None:
            clients.proc.kill()

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        clients.hear("warm")
        rss_warm = server_rss()
        clients.tell("go")
        ready = clients.hear("ready")
        if not ready["connected"]:
            raise RuntimeError(f"no client could connect: {ready['errors']}")
        result.update(
            connected=ready["connected"],
            connect_failed=ready["failed"],
            connect_errors=ready["errors"],
            connect_seconds=round(ready["seconds"], 1),
        )
        time.sleep(TICK_SPACING)  # idle: every connection's first update is out
        rss_idle = server_rss()
        result["rss_mib"] = round(rss_idle / 1024, 1)
        result["kib_per_connection"] = round((rss_idle - rss_warm) / max(1, n - warm), 2)
        if memory_only:
            return result
        time.sleep(TICK_SPACING)  # more than UPDATE_INTERVAL since any socket's last update

        before = command_calls(redis_client)
        publishes = timed_publishes()
        marks: list[tuple[float, float]] = []
        expected_total = 0
        waiting = ready["connected"]
        for _ in range(ticks):
            start = time.time()
            if base == "bare":
                publishes.append((time.time(), {}))
                redis_client.publish(BARE_CHANNEL, BARE_FRAME)
            else:
                services.tick(queue, limit=admit)
            if len(publishes) != len(marks) + 1:
                raise RuntimeError("a tick published no update")
            marks.append((start, publishes[-1][0]))
            expected_total += waiting
            deadline = start + 30
            while clients.count() < expected_total and time.time() < deadline:
                time.sleep(0.02)
            if base != "bare":
                waiting -= admit  # the admitted hold passes: no more updates for them
            pause = start + TICK_SPACING - time.time()
            if pause > 0:
                time.sleep(pause)
        after = command_calls(redis_client)
        clients.tell("report")
        report = clients.hear("report")
    finally:
        clients.close()
        proc.terminate()
        proc.wait(timeout=60)
        listening.close()
        if queue is not None:
            queue.delete()
    result.update(summarise(report["arrivals"], marks))
    calls = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    calls = {k: v for k, v in calls.items() if v and k not in SET_UP_COMMANDS}
    result["redis_commands_per_tick"] = round(sum(calls.values()) / ticks, 1)
    result["redis_commands"] = {k: round(v / ticks, 1) for k, v in sorted(calls.items())}
    result["admitted_per_tick"] = 0 if base == "bare" else admit
    return result


def timed_publishes() -> list[tuple[float, dict[str, Any]]]:
    """Each tick's update as published, and when: the moment before ticketqueue's live
    transport sends it to Redis (the bare server's publish is timed the same way)."""
    from ticketqueue.live import transport

    moments: list[tuple[float, dict[str, Any]]] = []
    send = getattr(transport.publish, "__wrapped__", transport.publish)

    def publish(queue_id: str, data: bytes) -> Any:
        if data.startswith(b'{"k":"tick"'):
            moments.append((time.time(), json.loads(data)))
        return send(queue_id, data)

    publish.__wrapped__ = send  # type: ignore[attr-defined]
    transport.publish = publish  # type: ignore[assignment]
    return moments


def summarise(arrivals: list[list[Any]], marks: list[tuple[float, float]]) -> dict[str, Any]:
    """Each client's first message after each tick: latency and the delivery rate, both from
    the tick's publish (``marks``: each tick's start and publish)."""
    latencies: list[float] = []
    rates: list[float] = []
    delivered = 0
    bounds = [m[0] for m in marks] + [float("inf")]
    for index, (_start, published) in enumerate(marks):
        first: dict[int, float] = {}
        for client, at, _kind in arrivals:
            # From the publish on: a resync's frame before it cannot carry this tick.
            if published <= at < bounds[index + 1] and client not in first:
                first[client] = at
        if not first:
            continue
        delivered += len(first)
        latencies += [at - published for at in first.values()]
        span = max(first.values()) - published
        rates.append(len(first) / span if span > 0 else float("inf"))
    return {
        "messages": delivered,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "messages_per_second": round(statistics.median(rates)) if rates else None,
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def floor_of(spec: str) -> str:
    """The ``-raw`` row that measures what a row's server costs alone (same options)."""
    base, _, options = spec.partition("+")
    kind = base.split("-")[0]
    return kind + "-raw" + ("+" + options if options else "")


def _share(row: dict[str, Any], floors: dict[tuple[str, int], dict[str, Any]]) -> str:
    floor = floors.get((floor_of(row["server"]), row["clients"]))
    return f"{floor['kib_per_connection']}" if floor else "-"


def write_docs(payload: dict[str, Any]) -> None:
    rows = payload["runs"]
    live = [r for r in rows if not parse_spec(r["server"])[0].endswith("-raw")]
    bare = {r["clients"]: r for r in rows if r["server"] == "bare"}
    floors = {(r["server"], r["clients"]): r for r in rows}
    lines = [
        HEADING,
        "",
        f"`{payload['command']}` on {payload['machine']} ({payload['date']}). One ASGI process "
        "holds all N sockets, a second process is the load generator (a minimal client that "
        "parses frames straight off the socket, so it is not the bottleneck), and Redis is a "
        "private redis-server whose commandstats count only this run. Each tick admits "
        f"{ADMIT_PER_TICK}, so every other socket's place moves; ticks are {TICK_SPACING} s "
        "apart (more than `UPDATE_INTERVAL`, so no update is held back) and start on the "
        "server as the connection storm left it (nothing is collected or trimmed first). The "
        "settings are the defaults a site gets: resyncs every `RESYNC_INTERVAL` (60 s) and "
        "the throttles on, each socket from its own address (X-Forwarded-For behind one "
        "trusted proxy). Latency runs from the moment the tick's update is published (the "
        "live transport's send to Redis) to each client's first message after it; the delivery "
        "rate from the same moment to the last of them. The bare baseline is a `websockets` "
        "server that broadcasts each Redis message to every socket with "
        "`websockets.broadcast()`, timed from its publish the same way.",
        "",
        "Rows: `uvicorn` and `daphne` serve the Channels consumer behind the documented stack "
        "(`AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(...)))`); `-lean` is the "
        "lean application (`ticketqueue.routing.QueueSocketApp`, same protocol, no Channels "
        "per socket); `+tqws` runs uvicorn with `--ws ticketqueue.live.uvicorn:WebSocketProtocol` "
        "(uvicorn's `websockets-sansio` protocol keeping less per socket); the others use "
        f"`--ws {payload['uvicorn_ws']}`. All uvicorn rows: permessage-deflate off, "
        "`--ws-max-size 4096`, default keepalive pings; daphne declines permessage-deflate by "
        "default.",
        "",
        "| server | N | p50 | p99 | max | msgs/s | vs bare | Redis cmds/tick | connect |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in live:
        failed = f" ({r['connect_failed']} failed)" if r["connect_failed"] else ""
        base = bare.get(r["clients"])
        ratio = (
            f"{r['messages_per_second'] / base['messages_per_second']:.2f}"
            if r["server"] != "bare"
            and base
            and base.get("messages_per_second")
            and r.get("messages_per_second")
            else "-"
        )
        lines.append(
            f"| {r['server']} | {r['clients']:,} | {r['p50_ms']} ms | {r['p99_ms']} ms | "
            f"{r['max_ms']} ms | {r['messages_per_second']:,} | {ratio} | "
            f"{r['redis_commands_per_tick']} | {r['connect_seconds']} s{failed} |"
        )
    lines += [
        "",
        "Memory of an idle connection, from the server's RSS as it stands (no collection "
        f"forced), between {WARM} and N connections. `-raw` is a minimal ASGI app under the same "
        "server and options (accept, greet, hold): what the server itself costs.",
        "",
        "| server | N | KiB per connection | server RSS | the server alone (`-raw`) |",
        "|---|---|---|---|---|",
    ]
    for r in live:
        lines.append(
            f"| {r['server']} | {r['clients']:,} | {r['kib_per_connection']} | "
            f"{r['rss_mib']} MiB | {_share(r, floors)} |"
        )
    biggest = max(r["clients"] for r in live)
    top = {r["server"]: r for r in live if r["clients"] == biggest}
    checks = []
    for server, r in top.items():
        if server == "bare" or "bare" not in top:
            continue
        ratio = r["messages_per_second"] / top["bare"]["messages_per_second"]
        checks.append(
            f"- {server} at {biggest:,}: delivery {ratio:.2f} of bare ({_verdict(ratio >= 0.5)}"
            f"), p99 {r['p99_ms']} ms ({_verdict(r['p99_ms'] < 1000)}), "
            f"{r['kib_per_connection']} KiB per idle connection "
            f"({_verdict(r['kib_per_connection'] < 20)})."
        )
    by_server: dict[str, list[tuple[int, float]]] = {}
    for r in live:
        if r["server"] != "bare":
            by_server.setdefault(r["server"], []).append(
                (r["clients"], r["redis_commands_per_tick"])
            )
    # The tick's own commands are flat in N; the resyncs in the window add a share of N.
    linear = all(max(v)[1] / max(v)[0] <= min(v)[1] / min(v)[0] * 1.05 for v in by_server.values())
    sizes = ", ".join(f"{n:,}" for n in sorted({r["clients"] for r in live}))
    checks.append(
        f"- Redis commands per tick, resyncs included, at N = {sizes}: "
        + "; ".join(f"{k} {', '.join(str(c) for _, c in v)}" for k, v in by_server.items())
        + f" ({_verdict(linear)}: they grow no faster than the sockets)."
    )
    lines += [
        "",
        "Against the targets (at least half the bare delivery rate, p99 under 1 s and under "
        "20 KiB per idle connection at 10k, Redis work that grows no faster than N):",
        "",
        *checks,
        "",
    ]
    options = payload.get("options") or []
    if options:
        n = options[0]["clients"]
        lines += [
            f"Server options, memory only ({n:,} idle connections, `--sizes {n} --ticks 0`; "
            "upper-case options are the server's environment):",
            "",
            "| server and options | KiB per connection | server RSS |",
            "|---|---|---|",
            *(
                f"| `{r['server']}` | {r['kib_per_connection']} | {r['rss_mib']} MiB |"
                for r in options
            ),
            "",
        ]
    lines += [
        "Where an idle socket's memory goes (`python bench/ws_bench.py --profile 500,1500 "
        "--verbose`: tracemalloc in the server, the difference between 500 and 1,500 idle "
        "sockets, each allocation charged to the innermost frame of a known component):",
        "",
        *profile_table(payload.get("profile") or []),
        "",
        *profile_reading(payload.get("profile") or []),
        "Redis commands per tick count every command the tick runs, including those inside the "
        "store's Lua scripts (commandstats counts them one by one): expire, admit, the journal, "
        "the counts, plus one PUBLISH for the tick's broadcast and one for its batch of passes. "
        "The socket process adds the resyncs that fell in the tick's window: each socket "
        "reads its exact status once per `RESYNC_INTERVAL` (60 s), spread out, up to 500 "
        "statuses per round trip (`QueueStore.locate_many`): about N / 24 status reads per "
        "tick at this spacing, a share of N and no more.",
        "",
        "Delivery: uvicorn writes a frame with one `send()`; daphne goes through autobahn and "
        "the Twisted reactor, which cost about 60-100 us a frame, hence its lower rate. For "
        "large sales run the sockets under uvicorn, several processes per host, with the lean "
        'application and the lighter protocol (docs/protocol.md, "Serving"). The connection '
        "storm is the other limit at 10k: CPython's cyclic garbage collector runs full "
        "collections over the growing heap (over a second each at ~4 million objects), so a "
        "process stalls briefly while thousands of sockets arrive.",
        "",
        "The machine is small and shared (load generator, Redis and PostgreSQL on the same two "
        "cores): delivery rates and tails move by 20-30% between runs, so compare the rows of "
        "one run, not figures across runs. Memory per connection is steady to about 0.3 KiB.",
        "",
        "Raw figures: `bench/results/ws.json`.",
        "",
    ]
    section = "\n".join(lines)
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text)


#: --profile: a traceback is charged to the innermost frame in one of these (first match).
COMPONENTS = [
    ("ticketqueue/live/hub.py", "ticketqueue: hub (seat, room indexes)"),
    ("ticketqueue/live/protocol.py", "ticketqueue: protocol (rate bucket, frames)"),
    ("ticketqueue/live/asgi.py", "ticketqueue: lean application"),
    ("ticketqueue/live/connection.py", "ticketqueue: QueueSocket"),
    ("ticketqueue/consumers.py", "ticketqueue: consumer"),
    ("ticketqueue/identity.py", "ticketqueue: identity"),
    ("django/contrib/sessions", "channels: session (SessionStore)"),
    ("django/contrib/auth", "channels: auth (user)"),
    ("channels/sessions.py", "channels: cookie + session middleware"),
    ("channels/auth.py", "channels: auth middleware"),
    ("channels/middleware.py", "channels: auth middleware"),
    ("channels/security", "channels: origin validator"),
    ("channels/routing.py", "channels: routers"),
    ("django/urls", "channels: routers"),
    ("channels/consumer.py", "channels: consumer instance"),
    ("channels/generic", "channels: consumer instance"),
    ("django/http", "django: cookie parsing"),
    ("uvicorn/", "server: uvicorn"),
    ("daphne/", "server: daphne"),
    ("twisted/", "server: twisted"),
    ("autobahn/", "server: autobahn"),
    ("websockets/", "server: websockets"),
    ("wsproto/", "server: wsproto"),
    ("h11/", "server: h11"),
    ("asyncio/", "asyncio"),
    ("bench/ws_bench.py", "bench app"),
]


def component(traceback: Any) -> str:
    for frame in reversed(traceback):  # innermost first
        name = frame.filename.replace("\\", "/")
        for marker, label in COMPONENTS:
            if marker in name:
                return label
    return "other"


def profile_memory(
    spec: str,
    low: int,
    high: int,
    redis_url: str,
    redis_client: Any,
    ws_impl: str,
    *,
    rss: bool = True,
) -> dict[str, Any]:
    """tracemalloc in the server: what ``high - low`` more idle connections allocated, per
    component and by traceback, beside the RSS growth (measured without tracing)."""
    import tracemalloc

    with tempfile.TemporaryDirectory() as tmp:
        prefix = str(Path(tmp) / "snap")
        run_one(spec, high, 0, redis_url, redis_client, ws_impl, warm=low, trace=prefix)
        before = tracemalloc.Snapshot.load(f"{prefix}.1")
        after = tracemalloc.Snapshot.load(f"{prefix}.2")
    plain = (
        run_one(spec, high, 0, redis_url, redis_client, ws_impl, warm=low, trace=None)
        if rss
        else {"kib_per_connection": None}
    )
    per = max(1, high - low)
    skip = tracemalloc.Filter(False, tracemalloc.__file__)
    diff = after.filter_traces([skip]).compare_to(before.filter_traces([skip]), "traceback")
    components: dict[str, float] = {}
    blocks: dict[str, float] = {}
    for stat in diff:
        label = component(stat.traceback)
        components[label] = components.get(label, 0) + stat.size_diff
        blocks[label] = blocks.get(label, 0) + stat.count_diff
    top = []
    for stat in sorted(diff, key=lambda st: -st.size_diff)[:40]:
        frames = [
            f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in reversed(stat.traceback)
        ][:4]
        top.append(
            {
                "kib": round(stat.size_diff / per / 1024, 3),
                "blocks": round(stat.count_diff / per, 2),
                "where": frames,
            }
        )
    return {
        "server": spec,
        "clients": [low, high],
        "rss_kib_per_connection": plain["kib_per_connection"],
        "traced_kib_per_connection": round(sum(components.values()) / per / 1024, 2),
        "components": {
            k: {"kib": round(v / per / 1024, 2), "blocks": round(blocks[k] / per, 1)}
            for k, v in sorted(components.items(), key=lambda kv: -kv[1])
        },
        "top": top,
    }


def profile_table(reports: list[dict[str, Any]]) -> list[str]:
    """Markdown: KiB per idle connection by component (rows) and server (columns)."""
    if not reports:
        return ["(not measured in this run)"]
    labels: list[str] = []
    for report in reports:
        for label, value in report["components"].items():
            if abs(value["kib"]) >= 0.05 and label not in labels:
                labels.append(label)
    specs = [r["server"] for r in reports]
    lines = [
        "| component | " + " | ".join(f"`{s}`" for s in specs) + " |",
        "|---|" + "---|" * len(specs),
    ]
    for label in labels:
        cells = []
        for report in reports:
            value = report["components"].get(label, {"kib": 0.0})["kib"]
            cells.append(f"{value:.2f}" if abs(value) >= 0.005 else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    rest = [sum(v["kib"] for k, v in r["components"].items() if k not in labels) for r in reports]
    lines.append("| the rest | " + " | ".join(f"{v:.2f}" for v in rest) + " |")
    lines.append(
        "| **traced in all** | "
        + " | ".join(f"**{r['traced_kib_per_connection']:.2f}**" for r in reports)
        + " |"
    )
    return lines


def profile_reading(reports: list[dict[str, Any]]) -> list[str]:
    """What the profile table says about ticketqueue's share, in figures from this run."""
    by = {r["server"]: r for r in reports}
    if not all(k in by for k in ("uvicorn-raw", "uvicorn", "uvicorn-lean", "uvicorn-lean+tqws")):
        return []

    def part(spec: str, *prefixes: str) -> float:
        return sum(v["kib"] for k, v in by[spec]["components"].items() if k.startswith(prefixes))

    def total(spec: str) -> float:
        return float(by[spec]["traced_kib_per_connection"])

    consumer = total("uvicorn") - total("uvicorn-raw")
    channels = part("uvicorn", "channels:", "django:")
    ours = part("uvicorn", "ticketqueue:")
    lean = total("uvicorn-lean") - total("uvicorn-raw")
    saved = total("uvicorn-lean") - total("uvicorn-lean+tqws")
    queue_event = part("uvicorn-lean", "asyncio") - part("uvicorn-lean+tqws", "asyncio")
    handshake = part("uvicorn-lean", "server: websockets") - part(
        "uvicorn-lean+tqws", "server: websockets"
    )
    return [
        f"Read across: the consumer adds {consumer:.1f} KiB of Python objects to what the raw "
        f"app keeps (`uvicorn` against `uvicorn-raw`): {channels:.1f} are Channels' stack (the "
        "cookie, session and auth middlewares' copies of the scope with the cookies, session "
        "and user objects, the URL router's copy, the origin validator, the consumer instance "
        "and every layer's suspended coroutine) and "
        f"{ours:.1f} ticketqueue's own (the `QueueSocket` and its rate bucket, the seat with "
        "its last frame, the room's set of the identity's seats, the identity string). The "
        f"lean application keeps only the latter and its own coroutine ({lean:.1f}). "
        f"`+tqws` takes {saved:.1f} off the server's share: the `asyncio.Queue` and `Event` "
        f"deques ({queue_event:.1f}, the asyncio row) and the handshake's request and response "
        f"({handshake:.1f}, the websockets row). tracemalloc sees Python's allocations only; "
        "RSS adds the allocator's slack (the kernel's socket buffers are not in RSS).",
        "",
    ]


def orchestrate_profile(args: argparse.Namespace) -> None:
    raise_nofile()
    low, high = (int(s) for s in args.profile.split(","))
    reports = []
    with private_redis() as (redis_url, redis_client):
        configure_django(redis_url)
        import django

        django.setup()
        ensure_database()
        for spec in args.servers.split(","):
            print(f"-- profile {spec}, {low} -> {high} idle connections", flush=True)
            report = profile_memory(spec, low, high, redis_url, redis_client, args.ws)
            reports.append(report)
            print(
                f"   RSS {report['rss_kib_per_connection']} KiB per connection, traced "
                f"{report['traced_kib_per_connection']} KiB (Python allocations)",
                flush=True,
            )
            for label, value in report["components"].items():
                print(f"   {value['kib']:7.2f} KiB {value['blocks']:6.1f} blocks  {label}")
            if args.verbose:
                for row in report["top"]:
                    where = " < ".join(row["where"])
                    print(f"   {row['kib']:7.3f} KiB {row['blocks']:5.2f}  {where}")
    if args.results:
        Path(args.results).write_text(json.dumps(reports, indent=2) + "\n")


def orchestrate(args: argparse.Namespace) -> None:
    if args.profile:
        orchestrate_profile(args)
        return
    limit = raise_nofile()
    sizes = [200] if args.quick else [int(s) for s in args.sizes.split(",")]
    if max(sizes) + 100 > limit:
        raise SystemExit(f"ulimit -n is {limit}: too low for {max(sizes)} sockets")
    ticks = 3 if args.quick else args.ticks
    servers = args.servers.split(",")
    if args.quick:  # CI: each code path once (the bare harness, daphne, Channels, lean)
        servers = [s for s in servers if s in QUICK_SERVERS]
    runs = []
    with private_redis() as (redis_url, redis_client):
        configure_django(redis_url)
        import django

        django.setup()
        ensure_database()
        for n in sizes:
            for server in servers:
                print(f"-- {server}, {n} clients", flush=True)
                run = run_one(server, n, ticks, redis_url, redis_client, args.ws)
                print(json.dumps(run), flush=True)
                runs.append(run)
        options = []
        profiles = []
        if not args.quick:
            for spec in filter(None, args.option_servers.split(",")):
                print(f"-- option {spec}, {args.option_size} idle clients", flush=True)
                try:
                    run = run_one(spec, args.option_size, 0, redis_url, redis_client, args.ws)
                except Exception as exc:  # noqa: BLE001 - e.g. a library that is not installed
                    print(f"   skipped: {exc!r}", flush=True)
                    continue
                print(json.dumps(run), flush=True)
                options.append(run)
            for spec in filter(None, args.profile_servers.split(",")):
                print(f"-- profile {spec}, {PROFILE_SIZES}", flush=True)
                report = profile_memory(
                    spec, *PROFILE_SIZES, redis_url, redis_client, args.ws, rss=False
                )
                report.pop("top")
                profiles.append(report)
    payload = {
        "command": "python bench/ws_bench.py" + (" --quick" if args.quick else ""),
        "date": datetime.now(tz=UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "uvicorn_ws": args.ws,
        "ticks": ticks,
        "runs": runs,
        "options": options,
        "profile": profiles,
    }
    results = Path(args.results) if args.results else QUICK_RESULTS if args.quick else RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(payload, indent=2) + "\n")
    if not args.quick and not args.results:
        write_docs(payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 clients, 3 ticks (CI)")
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument(
        "--option-servers",
        default=",".join(OPTION_SERVERS),
        help="server specs measured for memory only, at --option-size idle connections",
    )
    parser.add_argument("--option-size", type=int, default=2000)
    parser.add_argument(
        "--profile-servers",
        default=",".join(PROFILE_SERVERS),
        help=f"server specs profiled with tracemalloc ({PROFILE_SIZES}) in a full run",
    )
    parser.add_argument("--ticks", type=int, default=8)
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn's WebSocket library")
    parser.add_argument(
        "--role", default="orchestrator", choices=["orchestrator", "asgi", "bare", "clients"]
    )
    parser.add_argument("--server", default="daphne")
    parser.add_argument("--fd", type=int)
    parser.add_argument("--redis")
    parser.add_argument("--url")
    parser.add_argument("--cookies")
    parser.add_argument("--warm", type=int, default=WARM)
    parser.add_argument(
        "--profile",
        metavar="LOW,HIGH",
        help="where the memory goes: tracemalloc diff between LOW and HIGH idle connections",
    )
    parser.add_argument("--verbose", action="store_true", help="--profile: top tracebacks")
    parser.add_argument(
        "--results",
        help="write the JSON here (a full run's default: bench/results/ws.json and the docs)",
    )
    parser.add_argument("--options", default="")
    args = parser.parse_args()
    if args.role == "asgi":
        serve_asgi(args.server, args.fd, args.redis, args.ws, args.options)
    elif args.role == "bare":
        serve_bare(args.fd, args.redis)
    elif args.role == "clients":
        run_clients(args.url, args.cookies, args.warm)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
