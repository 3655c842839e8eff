"""Fan-out at scale: 20,000 ... 100,000 waiting sockets on this box, load generator included.

Several socket processes (the lean application under uvicorn with ticketqueue's protocol
class: the path docs/protocol.md recommends first) share the sockets; one queue holds every
socket's entry; the real tick runs once a second and admits a few, publishing through the real
live transport. Everything runs at the defaults a site gets (UPDATE_INTERVAL 2 s, resyncs every
RESYNC_INTERVAL 60 s, the throttles on), each socket from its own address (X-Forwarded-For
behind one trusted proxy, as a crowd's would be). Nothing is settled before it is measured.

The ramp adds sockets in steps. At each step it reports, over a window of ticks:

- the largest gap between two updates of each client (p50, p99, how many over 5 s), and
  the same p50 / p99 for each socket process's own clients, with each process's cores,
- delivery from the publish: each ``line`` frame's arrival against the moment the tick that
  it carries was published (protocol version 2 only; sampled clients),
- sockets lost,
- the step's connection storm: handshakes/s, each new socket's time to its first position,
  and the socket processes' CPU per handshake over the storm (the held sockets' share in it),
- each server's memory per socket (RSS growth over the step / sockets added).

    .venv/bin/python bench/fanout_bench.py [--steps 20000,40000,...] [--servers 6]
        [--clients 6] [--window 30] [--protocol 2|1] [--arrive-within S] [--results FILE]
        [--quick]
    .venv/bin/python bench/fanout_bench.py --bare --steps 20000 --results FILE

A step's new sockets come 500 in flight per load generator, the next as soon as one has its
first frame (closed loop), or with --arrive-within S evenly over S seconds however the servers
keep up (open loop: each one's first position timed from its arrival). The load generators are
one epoll loop each over plain sockets, a loopback source address per 1,000 sockets (as a
crowd's many addresses): what they cost is taken from the servers on this box.

--bare is the baseline for the connection storm: the same uvicorn processes and protocol
with an application that only accepts, greets and holds each socket (no ticketqueue), the
same load generators; it reports each step's handshakes/s and time to the first frame.

--quick (CI): 2 servers, 2 client processes, steps 500,1000, a 6 s window; written to
bench/results/fanout_quick.json only. A full run writes bench/results/fanout.json and the
"100,000 waiting sockets" section of docs/benchmarks.md; ``--results FILE`` leaves the docs.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import json
import os
import platform
import select
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from queue import SimpleQueue
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ws_bench  # noqa: E402
from bench._report import write_section  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "fanout.json"
QUICK_RESULTS = ROOT / "bench" / "results" / "fanout_quick.json"
DOCS = ROOT / "docs" / "benchmarks.md"
HEADING = "## 100,000 waiting sockets on one box (issue 18)"
SUBPROTOCOL = "ticketqueue.v2"
#: Admissions per tick: a line that moves, as in a sale.
ADMIT_PER_TICK = 10
TICK_SECONDS = 1.0
#: Handshakes in flight at once per load-generator process.
CONNECT_CONCURRENCY = 500
#: What the widget sends every HEARTBEAT_INTERVAL (25 s), as a client frame (masked, RFC 6455).
HEARTBEAT = b'{"type":"heartbeat"}'
#: One socket in this many records its line frames' arrival times (delivery from publish).
SAMPLE_EVERY = 10
GAP_LIMIT = 5.0


def configure(redis_url: str) -> None:
    ws_bench.configure_django(redis_url)  # the defaults a site gets, behind one proxy


# -- role: a socket process -------------------------------------------------------------------


def serve(fd: int, redis_url: str, bare: bool = False) -> None:
    ws_bench.raise_nofile()
    configure(redis_url)
    import django

    django.setup()
    import uvicorn

    from ticketqueue.routing import QueueSocketApp

    config = uvicorn.Config(
        # --bare: the same server and protocol with an application that only accepts, greets
        # and holds each socket (ws_bench.raw_application): the accept loop's own rate.
        ws_bench.raw_application if bare else QueueSocketApp(),
        ws="ticketqueue.live.uvicorn:WebSocketProtocol",
        ws_per_message_deflate=False,
        ws_max_size=4096,
        lifespan="off",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


# -- role: a load generator -------------------------------------------------------------------
#
# One epoll loop over plain non-blocking sockets, no asyncio: on this box the load generator
# shares the two cores with the servers, and asyncio's machinery per received frame (the
# selector's callbacks, a transport and a protocol call each) cost about twice this loop's.


#: Linux's socket option (linux/in.h) that leaves a bound socket's port to connect().
IP_BIND_ADDRESS_NO_PORT = 24
#: Sockets per loopback source address.
PER_ADDRESS = 1000


def source_address(index: int) -> str:
    """A loopback address of its own for every PER_ADDRESS sockets (127.0.0.0/8 is all
    loopback on Linux)."""
    block = index // PER_ADDRESS
    return f"127.2.{block // 250}.{block % 250 + 1}"


class Client:
    """One socket: a minimal WebSocket client (RFC 6455) that offers the version 2
    subprotocol, reads unmasked server frames, answers pings and keeps, for its socket, the
    time of its last frame (the fleet keeps the largest gap)."""

    __slots__ = ("buffer", "deadline", "done", "index", "last", "sock", "upgraded")

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock: socket.socket | None = sock  # None once closed
        self.buffer = bytearray()
        self.upgraded = False
        self.done = False  # its first frame came, or it was refused or lost before one
        self.deadline = 0.0  # the handshake was sent: its first frame is due by then
        self.last = 0.0


class Fleet:
    """Every socket of one load generator, driven by its stdin's commands (open N, window,
    report, quit): first frames, gaps, sampled line arrivals."""

    def __init__(
        self, ports: list[int], path: str, cookies: list[str], protocol: int, heartbeat: float
    ) -> None:
        self.ports, self.path, self.cookies = ports, path, cookies
        self.offer = f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n" if protocol == 2 else ""
        self.heartbeat = heartbeat
        self.epoll = select.epoll()
        self.by_fd: dict[int, Client] = {}
        self.clients: list[Client] = []  # every socket that was opened, in order
        self.opened = 0  # sockets asked for so far (indices below it were started)
        self.spacing: float | None = None  # seconds between two arrivals (open loop)
        self.to_open: list[int] = []  # indices not yet started, in reverse
        self.in_flight: dict[int, Client] = {}  # started, not yet done (fd -> client)
        self.opening: dict[str, Any] | None = None  # the "open" command being carried out
        self.started: dict[int, float] = {}
        self.first: dict[int, float] = {}  # index -> seconds from connect to first frame
        self.gap: dict[int, float] = {}  # index -> largest gap in the window
        self.window: float | None = None
        self.arrivals: list[tuple[int, float]] = []  # (admitted_total, time), sampled
        self.refusals = 0
        self.losses = 0
        self.granted: set[int] = set()
        self.beat_at = 0  # the next socket to say heartbeat

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        commands: SimpleQueue[str] = SimpleQueue()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)

        def read_stdin() -> None:
            for line in sys.stdin:
                commands.put(line.strip())
                os.write(wake_w, b"x")

        threading.Thread(target=read_stdin, daemon=True).start()
        self.epoll.register(wake_r, select.EPOLLIN)
        tick = time.monotonic()
        while True:
            wait = max(0.0, tick - time.monotonic())
            if self.spacing is not None and self.to_open:
                wait = min(wait, 0.005)  # the next arrivals are due
            for fd, _ in self.epoll.poll(wait):
                client = self.by_fd.get(fd)
                if client is not None:
                    self._ready(client)
                elif fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
            if time.monotonic() >= tick:
                tick = time.monotonic() + 0.1
                self._beat()
                self._give_up_late()
            self._start_connects()
            if self.opening is not None and not self.in_flight and not self.to_open:
                self._opened()
            while self.opening is None and not commands.empty():
                if not self._command(commands.get()):
                    for client in self.clients:
                        self._close(client)
                    return

    def _command(self, line: str) -> bool:
        command, _, arg = line.partition(" ")
        if command == "open":  # "open N [S]": up to N sockets in all [arriving over S s]
            count, _, within = arg.partition(" ")
            first, upto = self.opened, max(self.opened, min(int(count), len(self.cookies)))
            self.to_open = list(range(upto - 1, first - 1, -1))  # popped from the end
            self.opened = upto
            began = time.time()
            self.opening = {"began": began, "from": first, "upto": upto}
            # Open loop: the i-th new socket arrives at began + i * spacing, however the
            # servers keep up (its first position is timed from then); closed loop (no S):
            # CONNECT_CONCURRENCY at a time, each as soon as one before is done.
            self.spacing = float(within) / max(1, upto - first) if within else None
        elif command == "window":
            self.window, self.gap, self.arrivals = time.time(), {}, []
            for client in self.clients:
                client.last = 0.0
        elif command == "report":
            self._report()
        elif command == "quit":
            return False
        return True

    def _opened(self) -> None:
        opening, self.opening = self.opening, None
        assert opening is not None
        new = [self.first[i] for i in range(opening["from"], opening["upto"]) if i in self.first]
        _say(
            event="opened",
            seconds=time.time() - opening["began"],
            connected=len(new),
            refused=self.refusals,
            first=new,
        )

    def _report(self) -> None:
        end = time.time()
        gaps, servers = [], []
        for client in self.clients:
            if client.index in self.granted or client.index not in self.first:
                continue  # a pass holder hears no line: only the waiting count
            if client.sock is not None:
                tail = end - max(client.last, self.window or end)
                gaps.append(max(self.gap.get(client.index, 0.0), tail))
                servers.append(client.index % len(self.ports))
        self.window = None
        _say(event="report", gaps=gaps, servers=servers, arrivals=self.arrivals, lost=self.losses)

    # -- connecting -----------------------------------------------------------------------------
    def _start_connects(self) -> None:
        while self.to_open and self._may_start(self.to_open[-1]):
            index = self.to_open.pop()
            sock = socket.socket()
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio does
            # A crowd comes from many addresses: from one, the kernel's search for a free
            # source port grows with every socket held (past ~80,000 it took most of this
            # process's CPU and slowed the storm to a fifth). The port is still the kernel's
            # choice, made at connect among the ports of this address only.
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source_address(index), 0))
            self.started[index] = time.time()
            if self.spacing is not None:  # timed from its arrival, however late it started
                assert self.opening is not None
                self.started[index] = (
                    self.opening["began"] + (index - self.opening["from"]) * self.spacing
                )
            port = self.ports[index % len(self.ports)]
            if sock.connect_ex(("127.0.0.1", port)) not in (0, errno.EINPROGRESS):
                sock.close()
                self.refusals += 1
                continue
            client = Client(index, sock)
            self.clients.append(client)
            self.by_fd[sock.fileno()] = self.in_flight[sock.fileno()] = client
            self.epoll.register(sock, select.EPOLLOUT)

    def _may_start(self, index: int) -> bool:
        if self.spacing is None:
            return len(self.in_flight) < CONNECT_CONCURRENCY
        assert self.opening is not None
        due = self.opening["began"] + (index - self.opening["from"]) * self.spacing
        return time.time() >= due

    def _handshake(self, client: Client) -> None:
        """The connection is made (or failed): send the upgrade request."""
        sock = client.sock
        assert sock is not None
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._refused(client)
            return
        port = self.ports[client.index % len(self.ports)]
        sock.send(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Origin: {ws_bench.ORIGIN}\r\nCookie: tq_visitor={self.cookies[client.index]}\r\n"
            f"X-Forwarded-For: {ws_bench.address(client.index)}\r\n{self.offer}\r\n".encode()
        )
        client.deadline = time.monotonic() + 120
        self.epoll.modify(sock, select.EPOLLIN)

    def _give_up_late(self) -> None:
        now = time.monotonic()
        for client in list(self.in_flight.values()):
            if client.deadline and now > client.deadline:
                self._done(client)  # no first frame in 120 s: counted as neither

    # -- reading --------------------------------------------------------------------------------
    def _ready(self, client: Client) -> None:
        sock = client.sock
        if sock is None:
            return
        if not client.deadline and not client.upgraded:
            self._handshake(client)
            return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost(client)
            return
        if client.upgraded and not client.buffer and self._whole_frames(client, data):
            return  # the usual case, without copying into the buffer
        buffer = client.buffer
        buffer += data
        if not client.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buffer[:end].split(b"\r\n", 1)[0]:
                self._refused(client)
                return
            client.upgraded = True
            del buffer[: end + 4]
        while client.sock is not None and (frame := ws_bench.pop_frame(buffer)) is not None:
            self._frame(client, *frame)

    def _whole_frames(self, client: Client, data: bytes) -> bool:
        """``data`` is whole frames with short headers (a line frame, a ping): handled in
        place; False (nothing handled) otherwise."""
        frames = []
        at, size = 0, len(data)
        while at < size:
            if at + 2 > size:
                return False
            length, offset = data[at + 1] & 0x7F, 2
            if length == 126:
                if at + 4 > size:
                    return False
                length, offset = (data[at + 2] << 8) | data[at + 3], 4
            elif length == 127:
                return False
            end = at + offset + length
            if end > size:
                return False
            frames.append((data[at] & 0x0F, at + offset, end))
            at = end
        for opcode, start, end in frames:
            self._frame(client, opcode, data[start:end])
        return True

    def _frame(self, client: Client, opcode: int, payload: bytes) -> None:
        if opcode == 0x1:
            self._text(client, payload)
        elif opcode == 0x9 and client.sock is not None:  # ping: pong, masked by zeros
            with contextlib.suppress(OSError):
                client.sock.send(bytes([0x8A, 0x80 | len(payload), 0, 0, 0, 0]) + payload)
        elif opcode == 0x8:
            self._lost(client)

    def _text(self, client: Client, payload: bytes) -> None:
        now = time.time()
        index = client.index
        if not client.done:
            self.first[index] = now - self.started[index]
            self._done(client)
        elif self.window is not None:
            gap = now - max(client.last, self.window)
            if gap > self.gap.get(index, 0.0):
                self.gap[index] = gap
        client.last = now
        if payload.startswith(b'{"type":"granted"'):
            self.granted.add(index)
        elif index % SAMPLE_EVERY == 0 and payload.startswith(b'{"type":"line"'):
            self.arrivals.append((json.loads(payload)["admitted_total"], now))

    def _beat(self) -> None:
        """Every socket says heartbeat once per ``heartbeat`` seconds, spread evenly, as
        widgets do (this runs every 0.1 s)."""
        count = len(self.clients)
        if self.heartbeat <= 0 or not count:
            return
        frame = masked(HEARTBEAT)
        for _ in range(min(count, max(1, round(count * 0.1 / self.heartbeat)))):
            client = self.clients[self.beat_at % count]
            self.beat_at += 1
            if client.upgraded and client.sock is not None:
                with contextlib.suppress(OSError):
                    client.sock.send(frame)

    # -- endings --------------------------------------------------------------------------------
    def _done(self, client: Client) -> None:
        client.done = True
        if client.sock is not None:
            self.in_flight.pop(client.sock.fileno(), None)

    def _refused(self, client: Client) -> None:
        self.refusals += 1
        self._done(client)
        self._close(client)

    def _lost(self, client: Client) -> None:
        if not client.done:
            self._refused(client)
            return
        if client.index in self.first:
            self.losses += 1
        self._close(client)

    def _close(self, client: Client) -> None:
        sock, client.sock = client.sock, None
        if sock is not None:
            fd = sock.fileno()
            self.by_fd.pop(fd, None)
            self.in_flight.pop(fd, None)
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(fd)
            sock.close()


def run_clients(
    port_list: str, path: str, cookies_file: str, protocol: int, heartbeat: float
) -> None:
    ws_bench.raise_nofile()
    cookies = json.loads(Path(cookies_file).read_text())
    ports = [int(p) for p in port_list.split(",")]
    Fleet(ports, path, cookies, protocol, heartbeat).run()


def masked(payload: bytes) -> bytes:
    """A client's text frame: masked, as RFC 6455 requires of clients (payload < 126 bytes)."""
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes((0x81, 0x80 | len(payload))) + key + body


def _say(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# -- the orchestrator -------------------------------------------------------------------------


class Generator(ws_bench.LoadGenerator):
    def __init__(
        self, ports: list[int], path: str, cookies: list[str], protocol: int, heartbeat: float
    ) -> None:
        args = ["--ports", ",".join(map(str, ports)), "--path", path]
        args += ["--protocol", str(protocol), "--heartbeat", str(heartbeat)]
        super().__init__(__file__, args, cookies)


class Ticker(threading.Thread):
    """The real tick, once a second, admitting a few; notes when each tick's update was
    published (ws_bench.timed_publishes), by the admitted total its line frame carries."""

    def __init__(self, queue: Any) -> None:
        super().__init__(daemon=True)
        self.queue = queue
        self.publishes = ws_bench.timed_publishes()
        self.stopping = threading.Event()

    @property
    def published(self) -> dict[int, float]:
        moments: dict[int, float] = {}
        for moment, message in list(self.publishes):
            moments.setdefault(message["t"], moment)
        return moments

    def run(self) -> None:
        from ticketqueue import services

        while not self.stopping.is_set():
            began = time.time()
            services.tick(self.queue, limit=ADMIT_PER_TICK)
            self.stopping.wait(max(0.0, TICK_SECONDS - (time.time() - began)))


def storm_row(step: int, opened: list[dict[str, Any]], server_cpu: float) -> dict[str, Any]:
    """The step's connection storm; ``server_cpu``: the socket processes' CPU seconds over it
    (the sockets already held were served meanwhile: their share is in it too)."""
    firsts = [f for o in opened for f in o["first"]]
    seconds = max(o["seconds"] for o in opened)
    connected = sum(o["connected"] for o in opened)
    return {
        "sockets": step,
        "opened": connected,
        "refused": sum(o["refused"] for o in opened),
        "open_seconds": round(seconds, 1),
        "handshakes_per_s": round(connected / seconds, 0) if seconds else None,
        "first_frame_p99_s": round(ws_bench.percentile(firsts, 0.99), 2) if firsts else None,
        "server_ms_per_handshake": round(1000 * server_cpu / connected, 2) if connected else None,
    }


def by_sixth(opened: list[dict[str, Any]]) -> list[list[float]]:
    """Each load generator's first positions (in its arrival order) cut into sixths, the
    generators' same sixths together."""
    parts: list[list[float]] = [[] for _ in range(6)]
    for o in opened:
        firsts = o["first"]
        for i, value in enumerate(firsts):
            parts[i * 6 // len(firsts)].append(value)
    return parts


def summarise_step(
    step: int,
    reports: list[dict[str, Any]],
    opened: list[dict[str, Any]],
    published: dict[int, float],
    rss_growth: list[int],
    added: int,
    cores: dict[str, float],
) -> dict[str, Any]:
    gaps = [g for r in reports for g in r["gaps"]]
    by_server: dict[int, list[float]] = {}
    for r in reports:
        for gap, server in zip(r["gaps"], r["servers"], strict=True):
            by_server.setdefault(server, []).append(gap)
    delivery = [
        arrival - published[total]
        for r in reports
        for total, arrival in r["arrivals"]
        if total in published and arrival >= published[total]
    ]
    firsts = [f for o in opened for f in o["first"]]
    seconds = max(o["seconds"] for o in opened)
    connected = sum(o["connected"] for o in opened)
    pct = ws_bench.percentile
    return {
        "sockets": step,
        "held": len(gaps),
        "lost": sum(r["lost"] for r in reports),
        "gap_p50_s": round(pct(gaps, 0.5), 2),
        "gap_p99_s": round(pct(gaps, 0.99), 2),
        "gap_max_s": round(max(gaps), 2) if gaps else None,
        "over_5s": sum(1 for g in gaps if g > GAP_LIMIT),
        # Each socket process's own clients: pacing is per process, so the spread within one
        # process shows whether its sockets are late evenly, and across them how they share
        # the cores.
        "gap_p50_p99_by_server_s": [
            [round(pct(g, 0.5), 2), round(pct(g, 0.99), 2)] for _, g in sorted(by_server.items())
        ],
        "delivery_p50_ms": round(1000 * pct(delivery, 0.5), 1) if delivery else None,
        "delivery_p99_ms": round(1000 * pct(delivery, 0.99), 1) if delivery else None,
        "opened": connected,
        "refused": sum(o["refused"] for o in opened),
        "open_seconds": round(seconds, 1),
        "handshakes_per_s": round(connected / seconds, 0) if seconds else None,
        "first_position_p50_s": round(pct(firsts, 0.5), 2) if firsts else None,
        "first_position_p99_s": round(pct(firsts, 0.99), 2) if firsts else None,
        # In arrival order, a sixth of the step's new sockets at a time: whether the time to
        # a first position grows through the storm (a backlog) or stays flat.
        "first_position_p99_by_sixth_s": [
            round(pct(part, 0.99), 2) if part else None for part in by_sixth(opened)
        ],
        "kib_per_socket": round(sum(rss_growth) / max(1, added), 1),
        # Cores busy over the measuring window (CPU seconds / window): the deployment table's
        # sockets per socket-process core and Redis's work per waiting socket.
        "server_cores": round(cores["servers"], 3),
        # cpu_seconds's "server0", "server1", ... in order (not "servers", the sum).
        "server_cores_each": [
            round(v, 3) for k, v in cores.items() if k.removeprefix("server").isdigit()
        ],
        "redis_cores": round(cores["redis"], 3),
    }


def cpu_seconds(servers: list[subprocess.Popen[bytes]], redis_client: Any) -> dict[str, float]:
    """CPU seconds so far of the socket processes (from /proc) and of the private Redis."""
    each = []
    for p in servers:
        fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        each.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))  # utime+stime
    info = redis_client.info("cpu")
    return {
        "servers": sum(each),
        **{f"server{i}": seconds for i, seconds in enumerate(each)},
        "redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
    }


def orchestrate(args: argparse.Namespace) -> None:
    steps = [int(s) for s in args.steps.split(",")]
    total = max(steps)
    runs: list[dict[str, Any]] = []
    with ws_bench.private_redis() as (redis_url, redis_client):
        configure(redis_url)
        import django

        django.setup()
        ws_bench.ensure_database()
        queue, cookies = ws_bench.make_queue(total + args.ahead)
        cookies = cookies[args.ahead :]  # the first places stand for people with no socket here
        servers, listening = [], []
        for _ in range(args.servers):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(4096)
            listening.append(sock)
            servers.append(
                subprocess.Popen(  # noqa: S603
                    [
                        sys.executable,
                        __file__,
                        "--role",
                        "server",
                        "--fd",
                        str(sock.fileno()),
                        "--redis",
                        redis_url,
                        *(["--bare"] if args.bare else []),
                    ],
                    pass_fds=[sock.fileno()],
                )
            )
        ports = [s.getsockname()[1] for s in listening]
        print("socket processes:", " ".join(str(p.pid) for p in servers), flush=True)
        shares = [cookies[i :: args.clients] for i in range(args.clients)]
        path = f"/ws/queue/{queue.slug}/"
        generators = [
            Generator(ports, path, share, args.protocol, args.heartbeat) for share in shares
        ]
        ticker = Ticker(queue)
        if not args.bare:
            ticker.start()
        try:
            # A few sockets first: each process's imports and first-connection costs are not
            # any step's memory or handshake rate.
            previous = args.clients * max(1, args.warm // args.clients)
            for g in generators:
                g.tell(f"open {previous // len(generators)}")
            for g in generators:
                g.hear("opened")
            time.sleep(2)
            rss = [ws_bench.rss_kib(p.pid) for p in servers]
            for step in steps:
                print(f"-- {step} sockets", flush=True)
                arrive = f" {args.arrive_within}" if args.arrive_within else ""
                storm_began = cpu_seconds(servers, redis_client)["servers"]
                for g in generators:
                    g.tell(f"open {step // len(generators)}{arrive}")
                opened = [g.hear("opened") for g in generators]
                storm = storm_row(
                    step, opened, cpu_seconds(servers, redis_client)["servers"] - storm_began
                )
                if args.bare:  # the storm only: a bare server sends no updates
                    runs.append(storm)
                    print(json.dumps(runs[-1]), flush=True)
                    save(args, runs, write=False)
                    previous = step
                    continue
                now_rss = [ws_bench.rss_kib(p.pid) for p in servers]
                growth = [b - a for a, b in zip(rss, now_rss, strict=True)]
                rss = now_rss
                time.sleep(args.window / 6)  # the first updates after the storm go out
                for g in generators:
                    g.tell("window")
                print(f"   measuring for {args.window} s", flush=True)
                before = cpu_seconds(servers, redis_client), time.monotonic()
                time.sleep(args.window)
                after = cpu_seconds(servers, redis_client), time.monotonic()
                for g in generators:
                    g.tell("report")
                reports = [g.hear("report") for g in generators]
                span = after[1] - before[1]
                cores = {k: (after[0][k] - before[0][k]) / span for k in after[0]}
                row = summarise_step(
                    step, reports, opened, dict(ticker.published), growth, step - previous, cores
                )
                row["server_ms_per_handshake"] = storm["server_ms_per_handshake"]
                previous = step
                print(json.dumps(row), flush=True)
                runs.append(row)
                save(args, runs, write=False)  # each step kept, should a later one fail
        finally:
            ticker.stopping.set()
            if ticker.is_alive():
                ticker.join(timeout=30)
            for g in generators:
                g.close()
            for p in servers:
                p.terminate()
            for p in servers:
                p.wait(timeout=60)
            queue.delete()
    save(args, runs, write=not args.quick and not args.results and not args.bare)


def save(args: argparse.Namespace, runs: list[dict[str, Any]], *, write: bool) -> None:
    payload = {
        "command": " ".join(["python bench/fanout_bench.py", *sys.argv[1:]]),
        "date": datetime.now(tz=UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "servers": args.servers,
        "load_generators": args.clients,
        "protocol": args.protocol,
        "heartbeat_s": args.heartbeat,
        "window_s": args.window,
        "runs": runs,
    }
    results = Path(args.results) if args.results else QUICK_RESULTS if args.quick else RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(payload, indent=2) + "\n")
    if write:
        write_docs(payload)


def write_docs(payload: dict[str, Any]) -> None:
    lines = [
        HEADING,
        "",
        f"`{payload['command']}` ({payload['date']}, {payload['machine']}): "
        f"{payload['servers']} socket processes (lean application, uvicorn, "
        "`ticketqueue.live.uvicorn:WebSocketProtocol`), "
        f"{payload['load_generators']} load-generator processes, one Redis, the tick once a "
        f"second admitting {ADMIT_PER_TICK}, all on this machine's cores; protocol version "
        f"{payload['protocol']}; every socket says heartbeat every "
        f"{payload.get('heartbeat_s', 25.0):g} s as the widget does; defaults (UPDATE_INTERVAL "
        f"2 s, RESYNC_INTERVAL 60 s, the throttles on, each socket from its own address); each "
        f"step adds 20,000 sockets at once (its handshakes/s and first positions are that "
        f"storm's) and is then measured over {payload['window_s']:g} s. Pass holders (admitted "
        "during the run) are left out of the gaps: they get no line frames.",
        "",
        "| sockets | largest gap between updates, p50 / p99 of clients | over 5 s | lost "
        "| delivery from the publish p50 / p99 | step's handshakes/s | first position p99 "
        "| KiB per socket | socket processes' cores | Redis cores |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["runs"]:
        delivery = (
            f"{r['delivery_p50_ms']} / {r['delivery_p99_ms']} ms"
            if r["delivery_p50_ms"] is not None
            else "-"
        )
        lines.append(
            f"| {r['sockets']:,} | {r['gap_p50_s']} / {r['gap_p99_s']} s | {r['over_5s']:,} "
            f"| {r['lost']} | {delivery} | {r['handshakes_per_s']:,.0f} "
            f"| {r['first_position_p99_s']} s | {r['kib_per_socket']} "
            f"| {r.get('server_cores', '-')} | {r.get('redis_cores', '-')} |"
        )
    write_section(HEADING, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", default="20000,40000,60000,80000,100000")
    parser.add_argument("--servers", type=int, default=6)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--ahead", type=int, default=1000, help="places with no socket here")
    parser.add_argument("--warm", type=int, default=200, help="sockets opened before step one")
    parser.add_argument("--protocol", type=int, default=2, choices=[1, 2])
    parser.add_argument(
        "--heartbeat", type=float, default=25.0, help="seconds between a socket's heartbeats"
    )
    parser.add_argument(
        "--arrive-within",
        type=float,
        help="open loop: each step's new sockets arrive evenly over this many seconds, "
        "however fast the servers accept them (default: 500 handshakes in flight per load "
        "generator, the next as one is done)",
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="the baseline: servers that only accept, greet and hold (no ticketqueue)",
    )
    parser.add_argument("--results")
    parser.add_argument(
        "--role", default="orchestrator", choices=["orchestrator", "server", "clients"]
    )
    parser.add_argument("--fd", type=int)
    parser.add_argument("--redis")
    parser.add_argument("--ports")
    parser.add_argument("--path")
    parser.add_argument("--cookies")
    args = parser.parse_args()
    if args.role == "server":
        serve(args.fd, args.redis, args.bare)
    elif args.role == "clients":
        run_clients(args.ports, args.path, args.cookies, args.protocol, args.heartbeat)
    else:
        if args.quick:
            args.steps, args.servers, args.clients, args.window = "500,1000", 2, 2, 6.0
            args.ahead, args.warm = 100, 20
        orchestrate(args)


if __name__ == "__main__":
    main()
