"""The join burst's yardsticks for bench/loadtest.py: where the machine's CPU went while the
joins arrived, by part of the topology, and the bare baseline: the same number of WebSocket
handshakes, each sending one message and waiting for its echo, from the same client
(bench/_client.py) against a bare `websockets` server on this machine (no nginx, no Django, no
store, no database).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.server import serve

from bench._client import open_socket

#: The parts of the topology, by a word of their command line (first match wins).
PARTS = (
    ("sockets", ("uvicorn", "daphne")),
    ("app", ("gunicorn",)),
    ("celery", ("celery",)),
    ("nginx", ("nginx",)),
    ("postgres", ("postgres",)),
    ("redis", ("redis-server",)),
)
HZ = os.sysconf("SC_CLK_TCK")


def _part(pid: int, me: int) -> str:
    if pid == me:
        return "loadgen"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "other"
    for part, words in PARTS:
        if any(word in command for word in words):
            return part
    return "other"


class CpuMeter(threading.Thread):
    """Reads every process's CPU time (and the machine's) from /proc every ``interval``
    seconds, so a window chosen afterwards (the burst: its start to its last acknowledgement)
    can be split by part. A process that ends within the window loses its share to "other"."""

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._parts: dict[int, str] = {}

    def snapshot(self) -> dict[str, float]:
        used: dict[str, float] = {}
        me = os.getpid()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            part = self._parts.get(pid) or self._parts.setdefault(pid, _part(pid, me))
            used[part] = used.get(part, 0.0) + (int(fields[11]) + int(fields[12])) / HZ
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(x) for x in stat.readline().split()[1:]]
        used["machine"] = (sum(ticks[:3]) + sum(ticks[5:7])) / HZ  # user nice system irq softirq
        return used

    def run(self) -> None:
        self.samples.append((time.time(), self.snapshot()))
        while not self.stop.wait(self.interval):
            self.samples.append((time.time(), self.snapshot()))
        self.samples.append((time.time(), self.snapshot()))

    def split(self, start: float, end: float, count: int) -> dict[str, float] | None:
        """Milliseconds of CPU per ``count`` (joins) from the last sample at or before
        ``start`` to the first at or after ``end``, by part; "other" is the machine's rest."""
        before = [s for s in self.samples if s[0] <= start]
        after = [s for s in self.samples if s[0] >= end]
        if not before or not after or count <= 0:
            return None
        (t0, a), (t1, b) = before[-1], after[0]
        used = {part: b.get(part, 0.0) - a.get(part, 0.0) for part in b}
        machine = used.pop("machine")
        used.pop("other", None)
        used = {part: max(0.0, value) for part, value in used.items()}
        used["other"] = max(0.0, machine - sum(used.values()))
        used["machine"] = machine
        used["idle"] = max(0.0, (os.cpu_count() or 1) * (t1 - t0) - machine)
        return {part: value / count * 1000 for part, value in used.items()}


def format_split(split: dict[str, float] | None) -> str:
    if not split:
        return "-"
    parts = sorted(
        (p for p in split if p not in ("machine", "idle") and split[p] >= 0.005),
        key=lambda p: -split[p],
    )
    return (
        f"{split['machine']:.2f} ms ("
        + ", ".join(f"{p} {split[p]:.2f}" for p in parts)
        + (f"; idle {split['idle']:.2f})")
    )


# -- the bare baseline -------------------------------------------------------------------------


async def _echo_server() -> None:
    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(
        echo, "127.0.0.1", 0, compression=None, ping_interval=None, max_size=2**16, backlog=4096
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed


def serve_echo() -> None:
    """The bare server's process (bench/loadtest.py --serve-echo): prints its port, echoes
    every message, and ends when its stdin closes."""
    asyncio.run(_echo_server())


async def _burst(
    url: str, count: int, headers: Callable[[int], dict[str, str]], client: str, in_flight: int
) -> list[float]:
    acknowledged: list[float] = []
    everyone = asyncio.Event()
    window = asyncio.Semaphore(in_flight) if in_flight else None

    async def one(index: int) -> None:
        async with open_socket(client, url, headers(index), "http://127.0.0.1", None, window) as ws:
            await ws.send('{"type": "join"}')
            await ws.recv()
            acknowledged.append(time.time())
            if len(acknowledged) == count:
                everyone.set()
            await everyone.wait()  # held open, as the sale's sockets are

    await asyncio.gather(*(one(i) for i in range(count)))
    return acknowledged


def bare_echo(
    count: int, headers: Callable[[int], dict[str, str]], client: str = "picows", in_flight: int = 0
) -> dict[str, Any]:
    """``count`` handshakes at once against a bare echo server in its own process, each
    sending one message and waiting for its echo; joins/s as the sale counts them (from the
    start to the last echo) and the machine's CPU per handshake."""
    server = subprocess.Popen(  # noqa: S603 - this very script, by path
        [sys.executable, str(Path(__file__).with_name("loadtest.py")), "--serve-echo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    meter = CpuMeter()
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        meter.start()
        time.sleep(meter.interval * 2)
        started = time.time()
        acknowledged = asyncio.run(
            _burst(f"ws://127.0.0.1:{port}/", count, headers, client, in_flight)
        )
    finally:
        meter.stop.set()
        meter.join()
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    span = max(acknowledged) - started
    return {
        "handshakes": len(acknowledged),
        "span_s": span,
        "per_s": len(acknowledged) / span,
        "cpu_ms_per_handshake": meter.split(started, max(acknowledged), len(acknowledged)),
    }
