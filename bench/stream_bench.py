"""The event stream beside the socket (issue 14): N waiting clients on ONE uvicorn process, first
as WebSockets, then as server-sent event streams, on the same queue and hub.

For each transport it measures the server's memory per open client (RSS before and after they
connect, the process settled by gc) and the time from just before each tick (the tick itself,
its publish, the fan-out) to each client's next position update, p50 and p99 over the ticks.
The server is ws_bench's (the lean socket application, PostgreSQL, a private redis-server),
with ``QueueStreamApp`` in front for HTTP; throttles off (the clients stand for many people
from one address).

    .venv/bin/python bench/stream_bench.py [--quick] [--clients 2000] [--ticks 6] [--no-write]

Writes bench/results/stream.json and the "Event stream beside the socket (issue 14)" section of
docs/benchmarks.md (``--quick``: 100 clients, 2 ticks, for CI; writes neither docs nor JSON
unless asked).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

from _report import publish  # noqa: E402
from ws_bench import (  # noqa: E402
    address,
    configure_django,
    ensure_database,
    make_queue,
    percentile,
    private_redis,
    raise_nofile,
    rss_kib,
)

HEADING = "## Event stream beside the socket (issue 14)"
#: Seconds between ticks: more than UPDATE_INTERVAL (2 s), so no update is held back.
TICK_SPACING = 2.5


# -- role: the server ------------------------------------------------------------------------


def serve(fd: int, redis_url: str) -> None:
    raise_nofile()
    configure_django(redis_url)
    import django

    django.setup()
    import gc

    import uvicorn
    from channels.routing import ProtocolTypeRouter

    from ticketqueue.live.stream import QueueStreamApp
    from ticketqueue.routing import QueueSocketApp

    async def nothing_else(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    # SIGUSR1: settle (a full collection) before the orchestrator reads the RSS.
    signal.signal(signal.SIGUSR1, lambda *_: gc.collect())
    application = ProtocolTypeRouter(
        {"http": QueueStreamApp(nothing_else), "websocket": QueueSocketApp()}
    )
    config = uvicorn.Config(
        application,
        ws="ticketqueue.live.uvicorn:WebSocketProtocol",
        lifespan="off",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


# -- the clients -----------------------------------------------------------------------------


class Tally:
    """When each client heard each position, by client."""

    def __init__(self, n: int) -> None:
        self.heard: list[list[tuple[float, int]]] = [[] for _ in range(n)]
        self.ready = 0


async def ws_client(port: int, slug: str, cookie: str, i: int, tally: Tally) -> None:
    from websockets.asyncio.client import connect

    async with connect(
        f"ws://127.0.0.1:{port}/ws/queue/{slug}/",
        additional_headers={"Cookie": f"tq_visitor={cookie}", "X-Forwarded-For": address(i)},
        origin="http://127.0.0.1",
        open_timeout=120,
        ping_interval=None,
    ) as ws:
        first = True
        async for text in ws:
            message = json.loads(text)
            if message.get("type") == "queue_update" and message.get("position"):
                tally.heard[i].append((time.monotonic(), message["position"]))
                if first:
                    tally.ready += 1
                    first = False


async def sse_client(port: int, slug: str, cookie: str, i: int, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /queue/api/queues/{slug}/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: tq_visitor={cookie}\r\nX-Forwarded-For: {address(i)}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    first = True
    try:
        while line := await reader.readline():
            # Chunk sizes and blank lines are skipped; every event is one "data: " line.
            if not line.startswith(b"data: "):
                continue
            message = json.loads(line[6:])
            if message.get("type") == "queue_update" and message.get("position"):
                tally.heard[i].append((time.monotonic(), message["position"]))
                if first:
                    tally.ready += 1
                    first = False
    finally:
        writer.close()


# -- the orchestrator ------------------------------------------------------------------------


def run_transport(transport: str, clients: int, ticks: int, redis_url: str) -> dict[str, Any]:
    from ticketqueue import services

    queue, cookies = make_queue(clients + ticks * 2)
    cookies = cookies[-clients:]  # the listeners stand behind those who will be admitted
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    port = sock.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603 - this script, as the server
        [sys.executable, __file__, "--role", "server", "--fd", str(sock.fileno()), redis_url],
        pass_fds=[sock.fileno()],
    )
    try:
        time.sleep(1.0)
        server.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        before = rss_kib(server.pid)
        tally = Tally(clients)
        client = ws_client if transport == "websocket" else sse_client
        latencies: list[float] = []

        async def scenario() -> None:
            semaphore = asyncio.Semaphore(200)

            async def one(i: int) -> None:
                async with semaphore:
                    task = asyncio.ensure_future(client(port, queue.slug, cookies[i], i, tally))
                    while not tally.heard[i] and not task.done():
                        await asyncio.sleep(0.05)
                await task

            tasks = [asyncio.ensure_future(one(i)) for i in range(clients)]
            deadline = time.monotonic() + 300
            while tally.ready < clients and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            if tally.ready < clients:
                raise SystemExit(f"{transport}: {tally.ready} of {clients} connected")
            await asyncio.sleep(TICK_SPACING)
            server.send_signal(signal.SIGUSR1)
            await asyncio.sleep(0.5)
            nonlocal_after[0] = rss_kib(server.pid)
            for _ in range(ticks):
                seen = [len(h) for h in tally.heard]
                started = time.monotonic()
                await asyncio.to_thread(services.tick, queue, limit=2, use_rate=False)
                await asyncio.sleep(TICK_SPACING)
                for i, history in enumerate(tally.heard):
                    if len(history) > seen[i]:
                        latencies.append((history[seen[i]][0] - started) * 1000)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        nonlocal_after = [0]
        asyncio.run(scenario())
        expected = clients * ticks
        return {
            "clients": clients,
            "ticks": ticks,
            "rss_per_client_kib": (nonlocal_after[0] - before) / clients,
            "updates": len(latencies),
            "missed": expected - len(latencies),
            "p50_ms": percentile(latencies, 0.50),
            "p99_ms": percentile(latencies, 0.99),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
        sock.close()


def markdown(report: dict[str, Any]) -> str:
    rows = report["transports"]
    lines = [
        HEADING,
        "",
        f"`.venv/bin/python bench/stream_bench.py` on {report['machine']}, {report['date']}: "
        f"{rows['websocket']['clients']} waiting clients on one uvicorn process (the lean "
        "socket application and `QueueStreamApp`, PostgreSQL, a private redis-server, the "
        f"load generator on the same cores), {rows['websocket']['ticks']} ticks of 2 "
        "admissions each, 2.5 s apart. Delivery is timed from just before the tick (the tick, "
        "its publish and the fan-out) to each client's next position update.",
        "",
        "| transport | server memory per client | delivery p50 | p99 | updates missed |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in (("websocket", "WebSocket"), ("sse", "event stream (SSE)")):
        r = rows[name]
        lines.append(
            f"| {label} | {r['rss_per_client_kib']:.1f} KiB | {r['p50_ms']:.0f} ms | "
            f"{r['p99_ms']:.0f} ms | {r['missed']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", default="orchestrator")
    parser.add_argument("--fd", type=int)
    parser.add_argument("redis_url", nargs="?")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=6)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.role == "server":
        serve(args.fd, args.redis_url)
        return 0
    raise_nofile()
    clients, ticks = (100, 2) if args.quick else (args.clients, args.ticks)
    with private_redis() as (redis_url, _client):
        configure_django(redis_url)
        import django

        django.setup()
        ensure_database()
        transports = {
            name: run_transport(name, clients, ticks, redis_url) for name in ("websocket", "sse")
        }
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "transports": transports,
    }
    publish("stream", HEADING, report, markdown(report), quick=args.quick, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
