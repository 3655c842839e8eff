"""Purchase gate benchmark: req/s of one purchase view with HasQueuePass against the same view
without it, and of the REST join against a bare DRF view, on the same server in the same run,
under gunicorn (WSGI: 2 sync workers, gunicorn's documented 2 x cores + 1, and 2 gthread workers
of 8 threads) and one uvicorn (ASGI) process; PostgreSQL + RedisStore. For the REST requests,
where the machine's time goes (server, PostgreSQL, Redis, load generator, idle) and so the best
ratio Redis and PostgreSQL leave a join on these cores. Then, in this process, new visitors
joining from many threads with the group commit and with one commit per join.

Writes bench/results/gate.json and the "Purchase gate and REST API (issue 4)" section of
docs/benchmarks.md (``--quick``: a short smoke run for CI that writes neither).

    .venv/bin/python bench/gate_bench.py [--quick] [--duration 5] [--rounds 3]
        [--connections 16] [--loadgen auto|wrk|python] [--no-write]

The load comes from wrk (``apt-get install wrk``) in its own process, else from this script's
asyncio load generator in a child process. Every response must be a 2xx: a gate that refused
would look fast, so a run with refusals fails.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from _report import run_header

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results" / "gate.json"
DOCS = ROOT / "docs" / "benchmarks.md"
HEADING = "## Purchase gate and REST API (issue 4)"
PYTHON = sys.executable
BIN = Path(PYTHON).parent
#: Issue 18: a pass's first use in a worker >= 0.8 of the unprotected view, a cached one >= 0.95.
#: The join has no target here (issue 16 measures it against the guarantee's floor).
TARGETS = {
    "first_use_over_unprotected": 0.8,
    "cached_over_unprotected": 0.95,
    "join_new_over_floor": 0.7,
}

ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "gate_settings",
    "PYTHONPATH": os.pathsep.join([str(BENCH), str(ROOT)]),
    "PYTHONWARNINGS": "ignore",
}


# -- set-up ---------------------------------------------------------------------------------


def setup_django() -> None:
    os.environ.update({k: ENV[k] for k in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")})
    for entry in (str(ROOT), str(BENCH)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    import django

    django.setup()


def ensure_database() -> None:
    import psycopg

    name = os.environ.get("GATE_BENCH_DB", "ticketqueue_gate_bench")
    with psycopg.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
        user=os.environ.get("PGUSER", "postgres"),
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [PYTHON, "-m", "django", "migrate", "--noinput", "-v", "0"], env=ENV, cwd=ROOT, check=True
    )


def reset_queues() -> None:
    """Fresh queues: 'bench' admits everyone at once (the purchase pass), 'bench-line' makes
    everyone wait (joins of new visitors each add an entry)."""
    from ticketqueue import services
    from ticketqueue.models import Queue
    from ticketqueue.store import get_store

    store = get_store()
    for queue in Queue.objects.filter(slug__in=["bench", "bench-line", "bench-floor"]):
        store.delete(queue.store_id)
        queue.delete()
    for slug, mode in (("bench", "off"), ("bench-line", "always"), ("bench-floor", "always")):
        queue = Queue.objects.create(slug=slug, name=slug, mode=mode, purchase_window=3600)
        services.configure(queue)


def drop_queues() -> None:
    from ticketqueue.models import Queue
    from ticketqueue.store import get_store

    for queue in Queue.objects.filter(slug__in=["bench", "bench-line", "bench-floor"]):
        get_store().delete(queue.store_id)
        queue.delete()
    forget_floor()


def forget_floor() -> None:
    """Remove the floor view's counter (bench/gate_site.py) with the bench's queues."""
    import redis
    from django.conf import settings

    with redis.Redis.from_url(settings.TICKETQUEUE["REDIS_URL"]) as client:
        client.delete(f"{settings.TICKETQUEUE['KEY_PREFIX']}:floor")


#: Niceness of the servers and the load generator (--nice): on a machine shared with other
#: work, a negative value (root only) keeps the other tenants from setting the pace.
NICE = 0


def _niced() -> None:
    if NICE:
        os.nice(NICE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gunicorn(workers: int, threads: int = 0) -> Any:
    # A gthread worker keeps every keep-alive connection it accepted, and wrk's few long-lived
    # connections often all land on one worker (16 of 16 in some rounds: one core serves, the
    # other idles, req/s drops 2.5x). Many clients, or a proxy without upstream keep-alive,
    # spread out; --keep-alive 0 measures that case: every request on a new connection, as a
    # sync worker serves them anyway.
    threaded = (
        ["--worker-class", "gthread", "--threads", str(threads), "--keep-alive", "0"]
        if threads
        else []
    )
    return lambda port: [
        str(BIN / "gunicorn"),
        *threaded,
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(BENCH),
        "--log-level",
        "warning",
        "gate_site:application",
    ]


#: gunicorn's documented starting point for the worker count: (2 x cores) + 1.
GUNICORN_DOCUMENTED = 2 * (os.cpu_count() or 1) + 1

SERVERS = {
    "gunicorn": _gunicorn(2),
    # A sync worker sits idle while it waits for Redis or PostgreSQL; gunicorn's documented
    # count keeps the cores busy meanwhile. Same views, same run, for both sides of each ratio.
    "gunicorn-documented": _gunicorn(GUNICORN_DOCUMENTED),
    "gunicorn-gthread": _gunicorn(2, 8),
    "uvicorn": lambda port: [
        str(BIN / "uvicorn"),
        "gate_site:asgi_application",
        "--app-dir",
        str(BENCH),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--lifespan",
        "off",
        "--log-level",
        "warning",
    ],
}
SERVER_LABELS = {
    "gunicorn": "gunicorn, 2 sync workers (WSGI)",
    "gunicorn-documented": f"gunicorn, {GUNICORN_DOCUMENTED} sync workers (WSGI, 2 x cores + 1)",
    "gunicorn-gthread": "gunicorn, 2 gthread workers x 8 threads (WSGI, --keep-alive 0)",
    "uvicorn": "uvicorn, 1 process (ASGI)",
}


class Server:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        env = {**ENV, "GATE_BENCH_ASGI": "1" if self.kind == "uvicorn" else "0"}
        self.proc = subprocess.Popen(  # noqa: S603 - our own command line
            SERVERS[self.kind](self.port), env=env, cwd=ROOT, preexec_fn=_niced
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/bare/", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not start")
            time.sleep(0.2)

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_parts(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by the server and its workers, PostgreSQL's
        processes, Redis, this script's finished children (the load generator runs) and the
        whole machine, from /proc."""
        assert self.proc is not None
        used = dict.fromkeys(("server", "postgres", "redis"), 0)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                head, tail = stat.read_text().rsplit(")", 1)
            except OSError:
                continue
            fields = tail.split()
            pid, ppid = int(stat.parent.name), int(fields[1])
            ticks = int(fields[11]) + int(fields[12])  # utime, stime
            name = head.partition("(")[2]
            if self.proc.pid in (pid, ppid):
                used["server"] += ticks
            elif name == "postgres":
                used["postgres"] += ticks
            elif name.startswith("redis-server"):
                used["redis"] += ticks
        seconds = {key: value / os.sysconf("SC_CLK_TCK") for key, value in used.items()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds["loadgen"] = children.ru_utime + children.ru_stime
        seconds["machine"] = machine_cpu_seconds()
        return seconds

    def probe(self, path: str, method: str, headers: dict[str, str]) -> str:
        request = urllib.request.Request(
            self.base + path, method=method, headers=headers, data=b"" if method == "POST" else None
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
                return f"{r.status} {r.read()[:300]!r}"
        except urllib.error.HTTPError as exc:
            return f"{exc.code} {exc.read()[:300]!r}"

    def join(self, slug: str) -> tuple[str | None, str]:
        """(pass, visitor cookie value) of a fresh visitor joining ``slug``."""
        request = urllib.request.Request(
            f"{self.base}/queue/api/queues/{slug}/join/", method="POST", data=b""
        )
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
            body = json.loads(r.read())
            visitor = r.headers["X-Queue-Visitor"]
        return body["pass"], visitor


# -- load -----------------------------------------------------------------------------------


#: Each request comes from its own address (the proxy's X-Forwarded-For; TRUSTED_PROXIES is 1
#: in gate_settings): the n-th request of a load run from 10.x.y.z, so the per-address throttles
#: count a crowd, as in a sale, not one load generator.
def address(n: int) -> str:
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII is a valid Lua string literal


def wrk_script(method: str, rows: list[dict[str, str]] | None) -> str:
    """A wrk script: every request gets the next address and, with ``rows``, the next row's
    headers (a row per request: a pass presented for the first time, a returning visitor)."""
    lines = [f"wrk.method = {_lua_string(method)}", "local rows = {"]
    for row in rows or []:
        pairs = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in row.items())
        lines.append(f"  {{{pairs}}},")
    lines += [
        "}",
        "local n = 0",
        "function request()",
        "  local h = {}",
        "  for k, v in pairs(wrk.headers) do h[k] = v end",  # Host and the -H headers
        '  h["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256,'
        " math.floor(n / 256) % 256, n % 256)",
        "  if #rows > 0 then",
        "    for k, v in pairs(rows[n % #rows + 1]) do h[k] = v end",
        "  end",
        "  n = n + 1",
        "  return wrk.format(nil, nil, h)",
        "end",
    ]
    return "\n".join(lines) + "\n"


def run_wrk(
    url: str,
    method: str,
    headers: dict[str, str],
    conns: int,
    secs: float,
    rows: list[dict[str, str]] | None = None,
) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(method, rows))
        path = script.name
    try:
        cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(secs))}s", "-s", path]
        for name, value in headers.items():
            cmd += ["-H", f"{name}: {value}"]
        out = subprocess.run(  # noqa: S603
            [*cmd, url], capture_output=True, text=True, check=True, preexec_fn=_niced
        ).stdout
    finally:
        os.unlink(path)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": total,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "timeouts": int(errors.group(4)) if errors else 0,
    }


async def _load(
    url: str,
    method: str,
    headers: dict[str, str],
    conns: int,
    secs: float,
    rows: list[dict[str, str]] | None = None,
) -> dict:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    lines = [f"{method} {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Length: 0"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    head = "\r\n".join(lines)
    counts = {"ok": 0, "bad": 0, "sent": 0}
    stop = time.monotonic() + secs

    def raw() -> bytes:
        n = counts["sent"]
        counts["sent"] += 1
        extra = {"X-Forwarded-For": address(n), **(rows[n % len(rows)] if rows else {})}
        return (head + "".join(f"\r\n{k}: {v}" for k, v in extra.items()) + "\r\n\r\n").encode()

    async def client() -> None:
        reader = writer = None
        while time.monotonic() < stop:
            if writer is None:
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            writer.write(raw())
            answer = await reader.readuntil(b"\r\n\r\n")  # type: ignore[union-attr]
            status = int(answer.split(b" ", 2)[1])
            length = re.search(rb"(?i)content-length:\s*(\d+)", answer)
            await reader.readexactly(int(length.group(1)) if length else 0)  # type: ignore[union-attr]
            counts["ok" if 200 <= status < 300 else "bad"] += 1
            if re.search(rb"(?i)connection:\s*close", answer):
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(conns)))
    elapsed = time.monotonic() - started
    total = counts["ok"] + counts["bad"]
    return {"rps": total / elapsed, "requests": total, "non_2xx": counts["bad"], "timeouts": 0}


def run_python(
    url: str,
    method: str,
    headers: dict[str, str],
    conns: int,
    secs: float,
    rows: list[dict[str, str]] | None = None,
) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump([url, method, headers, conns, secs, rows], spec)
    try:
        out = subprocess.run(  # noqa: S603 - the load generator in its own process
            [PYTHON, __file__, "--loadgen-worker", spec.name],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=_niced,
        ).stdout
    finally:
        os.unlink(spec.name)
    return json.loads(out)


# -- the measurements -----------------------------------------------------------------------


#: Where the machine's time goes per request: the server, PostgreSQL, Redis, the load
#: generator, everything else (kernel threads, this script, other tenants) and idle cores.
PARTS = ("server", "postgres", "redis", "loadgen", "other", "idle")


def machine_split(before: dict, after: dict, wall: float, requests: int) -> dict[str, float]:
    """Microseconds per request of each of PARTS between two ``Server.cpu_parts``."""
    used = {key: after[key] - before[key] for key in after}
    split = {key: used[key] for key in ("server", "postgres", "redis", "loadgen")}
    split["other"] = max(0.0, used["machine"] - sum(split.values()))
    split["idle"] = max(0.0, (os.cpu_count() or 1) * wall - used["machine"])
    return {key: value / requests * 1e6 for key, value in split.items()}


#: A case: path, method, fixed headers, and optionally a maker of per-request header rows
#: (called with how many rows a run may need, before every run, so each run gets fresh ones).
Case = tuple[str, str, dict[str, str]] | tuple[str, str, dict[str, str], Any]


def fresh_passes(count: int) -> list[dict[str, str]]:
    """``count`` buyers admitted now to the 'bench' queue: each row the pass and the visitor
    cookie a buyer's first purchase request presents. Made through the store's own join (the
    queue admits at once) and the services' signer; the gate reads no rows, so none is written.
    """
    from ticketqueue import services
    from ticketqueue.identity import new_visitor_cookie
    from ticketqueue.models import Queue
    from ticketqueue.store import get_store
    from ticketqueue.store.base import Admission

    queue, store = Queue.objects.get(slug="bench"), get_store()
    rows, admissions = [], []
    for _ in range(count):
        visitor, signed = new_visitor_cookie()
        placement = store.join(queue.store_id, f"anon:{visitor}", services.clock()).placement
        assert placement.admitted_at is not None and placement.expires_at is not None
        admissions.append(
            Admission(
                placement.seq,
                placement.identity,
                placement.admitted_at,
                placement.expires_at,
                0,
            )
        )
        rows.append({"Cookie": f"tq_visitor={signed}"})
    for row, token in zip(rows, services.issue_passes(queue, admissions), strict=True):
        row["Authorization"] = f"QueuePass {token}"
    return rows


def returning_visitors(count: int) -> list[dict[str, str]]:
    """``count`` visitors already in the 'bench-line' queue, each with its own address: the
    rows of returning visitors (each comes back at most once per run, under join_identity)."""
    from ticketqueue import services
    from ticketqueue.identity import new_visitor_cookie
    from ticketqueue.models import Queue

    line = Queue.objects.get(slug="bench-line")
    rows = []
    for n in range(count):
        visitor, signed = new_visitor_cookie()
        services.join(line, f"anon:{visitor}")
        rows.append(
            {
                "Cookie": f"tq_visitor={signed}",
                "X-Forwarded-For": f"10.200.{n >> 8 & 255}.{n & 255}",
            }
        )
    return rows


class Bench:
    def __init__(self, loadgen: str, conns: int, secs: float, rounds: int) -> None:
        self.load = run_wrk if loadgen == "wrk" else run_python
        self.loadgen = loadgen
        self.conns, self.secs, self.rounds = conns, secs, rounds
        #: The most req/s seen so far: sizes the rows of the next run.
        self.peak = 4000.0 if loadgen == "wrk" else 1000.0

    def rows_needed(self, secs: float) -> int:
        return int(self.peak * secs * 1.5) + 500

    def _run(self, server: Server, case: Case, conns: int, secs: float) -> dict:
        path, method, headers = case[0], case[1], case[2]
        rows = case[3](self.rows_needed(secs)) if len(case) > 3 else None
        result = self.load(server.base + path, method, headers, conns, secs, rows)
        if rows is not None and result["requests"] > len(rows):
            raise SystemExit(
                f"{server.kind} {path}: {result['requests']} requests for {len(rows)} rows: "
                "some rows were sent twice (raise Bench.peak)"
            )
        self.peak = max(self.peak, result["rps"])
        return result

    def measure(self, server: Server, cases: dict[str, Case]) -> dict:
        """Each case ``rounds`` times, alternating the order, so drift hits all alike."""
        samples: dict[str, list[float]] = {name: [] for name in cases}
        split: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
        names = list(cases)
        for name in names:  # warm-up: imports, connections, each worker's pass subscription
            self._run(server, cases[name], 4, min(1.0, self.secs))
        for r in range(self.rounds):
            for name in names if r % 2 == 0 else reversed(names):
                path, method, headers = cases[name][:3]
                before, started = server.cpu_parts(), time.monotonic()
                result = self._run(server, cases[name], self.conns, self.secs)
                after, wall = server.cpu_parts(), time.monotonic() - started
                if result["non_2xx"] or not result["requests"]:
                    raise SystemExit(
                        f"{server.kind} {name}: {result} (refusals or no answers); one more "
                        f"request answers {server.probe(path, method, headers)}"
                    )
                samples[name].append(result["rps"])
                split[name].append(machine_split(before, after, wall, result["requests"]))
        return {
            name: {
                "rps": statistics.median(values),
                "samples": [round(v, 1) for v in values],
                "server_cpu_us": statistics.median(s["server"] for s in split[name]),
                "server_cpu_us_samples": [round(s["server"]) for s in split[name]],
                "machine_us": {
                    part: statistics.median(s[part] for s in split[name]) for part in PARTS
                },
            }
            for name, values in samples.items()
        }

    @staticmethod
    def paired(section: dict, over: str, under: str) -> float:
        """The median of the round-by-round ratios: each round's two figures were taken back
        to back, so a load that drifts (a shared machine) cancels out of each ratio."""
        pairs = zip(section[over]["samples"], section[under]["samples"], strict=True)
        return statistics.median(a / b for a, b in pairs)

    @staticmethod
    def cpu_ratio(section: dict, over: str, under: str) -> float:
        """Throughput ratio as the server's CPU per request sees it (CPU-bound, I/O aside)."""
        return section[under]["server_cpu_us"] / section[over]["server_cpu_us"]

    def run(self, kind: str, returning: list[dict[str, str]]) -> dict:
        print(f"{SERVER_LABELS[kind]}", flush=True)
        with Server(kind) as server:
            token, visitor = server.join("bench")
            assert token, "the bench queue admits at once"
            cached = {"Cookie": f"tq_visitor={visitor}", "Authorization": f"QueuePass {token}"}
            # Buyers are admitted while the workers listen for ended passes, as in a sale whose
            # servers were up before it: warm up (each worker subscribes on its first pass),
            # then let PASS_LEEWAY go by before the first measured admission.
            self._run(server, ("/purchase/", "GET", cached), self.conns, 1.0)
            time.sleep(leeway() + 1)
            gate = self.measure(
                server,
                {
                    # The same headers as a first use, to a view without the gate.
                    "unprotected": ("/purchase-open/", "GET", {}, fresh_passes),
                    "first_use": ("/purchase/", "GET", {}, fresh_passes),
                    "cached": ("/purchase/", "GET", cached),
                },
            )
            rest = self.measure(
                server,
                {
                    "bare_drf": ("/bare/", "POST", {}),
                    "join_floor": ("/join-floor/", "POST", {}),
                    "join_new": ("/queue/api/queues/bench-line/join/", "POST", {}),
                    "join_returning": (
                        "/queue/api/queues/bench-line/join/",
                        "POST",
                        {},
                        lambda count: returning[:count],
                    ),
                },
            )
        result = {
            "server": SERVER_LABELS[kind],
            "gate": gate,
            "rest": rest,
            "ratios": {
                key: self.paired(section, over, under)
                for key, (section, over, under) in self.pairs(gate, rest).items()
            },
            "cpu_ratios": {
                key: self.cpu_ratio(section, over, under)
                for key, (section, over, under) in self.pairs(gate, rest).items()
            },
        }
        for section in (gate, rest):
            for name, stats in section.items():
                print(
                    f"  {name:16} {stats['rps']:8.0f} req/s {stats['server_cpu_us']:7.0f} us CPU"
                    f"  {stats['samples']}",
                    flush=True,
                )
        for name, value in result["ratios"].items():
            print(f"  {name:30} {value:.2f} (CPU: {result['cpu_ratios'][name]:.2f})", flush=True)
        return result

    @staticmethod
    def pairs(gate: dict, rest: dict) -> dict[str, tuple[dict, str, str]]:
        return {
            "first_use_over_unprotected": (gate, "first_use", "unprotected"),
            "cached_over_unprotected": (gate, "cached", "unprotected"),
            "join_new_over_bare": (rest, "join_new", "bare_drf"),
            "join_returning_over_bare": (rest, "join_returning", "bare_drf"),
            "join_new_over_floor": (rest, "join_new", "join_floor"),
        }


def leeway() -> float:
    from ticketqueue.conf import queue_settings

    return float(queue_settings.PASS_LEEWAY)


def wsgi_cpu_us(
    app: Any,
    start_response: Any,
    method: str,
    path: str,
    headers: dict[str, str],
    n: int,
    query: str = "",
    rows: list[dict[str, str]] | None = None,
) -> float:
    """CPU microseconds per request of ``n`` bodiless requests through a WSGI ``app``, each
    from its own address and, with ``rows`` (WSGI names), with the next row's headers."""
    started = time.process_time()
    for i in range(n):
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_X_FORWARDED_FOR": address(i),
            "CONTENT_LENGTH": "0",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http",
            **headers,
            **(rows[i % len(rows)] if rows else {}),
        }
        response = app(environ, start_response)
        b"".join(response)
        response.close()
    return (time.process_time() - started) / n * 1e6


def _wsgi_names(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"HTTP_" + k.upper().replace("-", "_"): v for k, v in row.items()} for row in rows]


def in_process(rounds: int, requests: int, returning: list[dict[str, str]]) -> dict:
    """CPU time per request through Django's WSGI handler in this process, no network: the
    figure another tenant of the machine disturbs least. Alternating rounds, median ratio."""

    import gate_site

    from ticketqueue import revocation, services
    from ticketqueue.identity import new_visitor_cookie
    from ticketqueue.models import Queue

    tracker = revocation.get_tracker()
    if isinstance(tracker, revocation.PubSubTracker):
        tracker.start()
        tracker.subscribed.wait(5)
        time.sleep(leeway() + 1)  # buyers admitted while this worker listens, as in a sale
    bench_queue = Queue.objects.get(slug="bench")
    visitor, signed = new_visitor_cookie()
    token = services.join(bench_queue, f"anon:{visitor}").pass_token
    cached = {"HTTP_COOKIE": f"tq_visitor={signed}", "HTTP_AUTHORIZATION": f"QueuePass {token}"}
    back = _wsgi_names(returning[:requests])
    cases: dict[str, tuple[str, str, dict[str, str], Any]] = {
        "unprotected": ("GET", "/purchase-open/", {}, lambda: _wsgi_names(fresh_passes(requests))),
        "first_use": ("GET", "/purchase/", {}, lambda: _wsgi_names(fresh_passes(requests))),
        "cached": ("GET", "/purchase/", cached, None),
        "bare_drf": ("POST", "/bare/", {}, None),
        "join_floor": ("POST", "/join-floor/", {}, None),
        "join_new": ("POST", "/queue/api/queues/bench-line/join/", {}, None),
        "join_returning": ("POST", "/queue/api/queues/bench-line/join/", {}, lambda: back),
    }

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    def cpu_us(method: str, path: str, headers: dict[str, str], rows: Any, n: int) -> float:
        return wsgi_cpu_us(
            gate_site.application,
            start_response,
            method,
            path,
            headers,
            n,
            rows=rows() if rows else None,
        )

    samples: dict[str, list[float]] = {name: [] for name in cases}
    for case in cases.values():
        cpu_us(*case, max(50, requests // 10))  # warm-up
    for r in range(rounds):
        for name in cases if r % 2 == 0 else reversed(list(cases)):
            samples[name].append(cpu_us(*cases[name], requests))
    return {
        "requests_per_round": requests,
        "cpu_us": {name: statistics.median(values) for name, values in samples.items()},
        "samples": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        "ratios": {
            key: statistics.median(
                b / a for a, b in zip(samples[over], samples[under], strict=True)
            )
            for key, (_, over, under) in Bench.pairs({}, {}).items()
        },
    }


def machine_cpu_seconds() -> float:
    """CPU time of the whole machine (all processes: these joins, Redis, PostgreSQL)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    busy = sum(fields[:3]) + sum(fields[5:7])  # user nice system, irq softirq
    return busy / os.sysconf("SC_CLK_TCK")


def signature_check(rounds: int, count: int) -> dict:
    """Microseconds to verify a pass never seen before: ticketqueue's HS256 path (one HMAC,
    one JSON parse) against PyJWT's full decode with the same pinned algorithm and required
    claims, on the same fresh tokens, alternating rounds."""
    import jwt

    from ticketqueue import passes

    keys = passes._current_keys()
    options = passes._DECODE_OPTIONS
    issuer = passes.queue_settings.PASS_ISSUER

    def ours(token: str) -> Any:
        return passes._verify_signature(token, keys)

    def pyjwt(token: str) -> Any:
        return jwt.decode(
            token, keys.verifying[None], algorithms=["HS256"], issuer=issuer, options=options
        )

    samples: dict[str, list[float]] = {"ticketqueue": [], "pyjwt": []}
    for r in range(rounds):
        tokens = [row["Authorization"].split(" ", 1)[1] for row in fresh_passes(count)]
        order = [("ticketqueue", ours), ("pyjwt", pyjwt)]
        for name, check in order if r % 2 == 0 else reversed(order):
            started = time.process_time()
            for token in tokens:
                check(token)
            samples[name].append((time.process_time() - started) / count * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def burst(threads: int, secs: float, rounds: int) -> dict:
    """New visitors joining from ``threads`` threads of one process (a threaded server's
    worker), with the group commit against one commit per join, alternating rounds."""
    import threading
    import uuid

    from django.db import connection

    from ticketqueue import rows, services
    from ticketqueue.core import GroupCommit
    from ticketqueue.models import Queue

    line = Queue.objects.get(slug="bench-line")
    statements = [0]

    def insert(values: Any) -> None:
        statements[0] += 1
        rows.insert_entries(values)

    class OneCommitEach:
        def submit(self, values: Any) -> None:
            insert([values])

    writers = {"grouped": GroupCommit(insert), "alone": OneCommitEach()}
    samples: dict[str, dict[str, list[float]]] = {
        name: {"joins_per_s": [], "machine_cpu_us": [], "statements_per_join": []}
        for name in writers
    }
    original = rows.grouped_inserts
    try:
        for r in range(rounds):
            for name in writers if r % 2 == 0 else reversed(list(writers)):
                rows.grouped_inserts = writers[name]  # type: ignore[assignment]
                counts = [0] * threads
                stop = time.monotonic() + secs

                def joiner(i: int, counts: list[int], stop: float) -> None:
                    try:
                        while time.monotonic() < stop:
                            services.join(line, f"anon:{uuid.uuid4().hex}")
                            counts[i] += 1
                    finally:
                        connection.close()

                workers = [
                    threading.Thread(target=joiner, args=(i, counts, stop)) for i in range(threads)
                ]
                statements[0] = 0
                cpu, started = machine_cpu_seconds(), time.perf_counter()
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
                elapsed = time.perf_counter() - started
                cpu = machine_cpu_seconds() - cpu
                joins = sum(counts)
                samples[name]["joins_per_s"].append(joins / elapsed)
                samples[name]["machine_cpu_us"].append(cpu / joins * 1e6)
                samples[name]["statements_per_join"].append(statements[0] / joins)
    finally:
        rows.grouped_inserts = original
    median = {
        name: {key: statistics.median(values) for key, values in figures.items()}
        for name, figures in samples.items()
    }
    pairs = zip(samples["grouped"]["joins_per_s"], samples["alone"]["joins_per_s"], strict=True)
    cpu_pairs = zip(
        samples["grouped"]["machine_cpu_us"], samples["alone"]["machine_cpu_us"], strict=True
    )
    return {
        "threads": threads,
        "seconds": secs,
        "rounds": rounds,
        "median": median,
        "samples": {
            name: {key: [round(v, 2) for v in values] for key, values in figures.items()}
            for name, figures in samples.items()
        },
        "ratios": {
            "joins_per_s_grouped_over_alone": statistics.median(a / b for a, b in pairs),
            "machine_cpu_alone_over_grouped": statistics.median(b / a for a, b in cpu_pairs),
        },
    }


def verdict(report: dict) -> str:
    """Each target against each measure, to three decimals: no rounding in our favour."""

    def show(key: str, target: float) -> str:
        parts = []
        for label, values in (
            ("req/s", [r["ratios"][key] for r in report["runs"]]),
            ("server CPU", [r["cpu_ratios"][key] for r in report["runs"]]),
            ("in process", [report["in_process"]["ratios"].get(key)]),
        ):
            values = [v for v in values if v is not None]
            if values:
                marks = ", ".join(
                    f"{math.floor(v * 1000) / 1000:.3f}{'' if v >= target else ' (below)'}"
                    for v in values
                )
                parts.append(f"{label} {marks}")
        return "; ".join(parts)

    return (
        "**Targets** (servers in the tables' order). A pass's first use >= "
        f"{TARGETS['first_use_over_unprotected']} of the unprotected view: "
        f"{show('first_use_over_unprotected', TARGETS['first_use_over_unprotected'])}. A cached "
        f"pass >= {TARGETS['cached_over_unprotected']}: "
        f"{show('cached_over_unprotected', TARGETS['cached_over_unprotected'])}. A new "
        f"visitor's REST join >= {TARGETS['join_new_over_floor']} of the floor view (one Redis "
        "script and one committed INSERT, nothing else: `join-floor/` in bench/gate_site.py): "
        f"{show('join_new_over_floor', TARGETS['join_new_over_floor'])}. {spread(report)}"
    )


def spread(report: dict) -> str:
    """How far apart the rounds' own first-use ratios were: the noise the medians sit in."""
    ranges = []
    for run in report["runs"]:
        gate = run["gate"]
        pairs = zip(gate["first_use"]["samples"], gate["unprotected"]["samples"], strict=True)
        ratios = [a / b for a, b in pairs]
        ranges.append(f"{min(ratios):.2f}-{max(ratios):.2f}")
    return f"The rounds' own first-use ratios ranged {', '.join(ranges)} (same order)."


def burst_markdown(burst: dict) -> str:
    grouped, alone, ratios = burst["median"]["grouped"], burst["median"]["alone"], burst["ratios"]
    return "\n".join(
        [
            f"**New visitors at once.** {burst['threads']} threads of one process (a threaded "
            "server's worker) join new visitors as fast as they can, with the group commit "
            "(joins waiting at the same moment share one INSERT and one commit) and with one "
            f"commit per join, {burst['rounds']} alternating rounds of {burst['seconds']:g} s; "
            "the CPU is the whole machine's (this process, Redis and PostgreSQL), per join:",
            "",
            "| writer | joins/s | statements per join | machine CPU per join (us) |",
            "|---|---:|---:|---:|",
            f"| group commit | {grouped['joins_per_s']:,.0f} "
            f"| {grouped['statements_per_join']:.2f} | {grouped['machine_cpu_us']:,.0f} |",
            f"| one commit per join | {alone['joins_per_s']:,.0f} "
            f"| {alone['statements_per_join']:.2f} | {alone['machine_cpu_us']:,.0f} |",
            "",
            f"Same run: joins/s grouped / alone {ratios['joins_per_s_grouped_over_alone']:.2f}, "
            f"machine CPU per join alone / grouped {ratios['machine_cpu_alone_over_grouped']:.2f}."
            " Each join still answers only once its own row is committed.",
        ]
    )


CASES = {"bare_drf": "bare DRF", "join_new": "join, new", "join_returning": "join, returning"}


def ceiling(run: dict, case: str) -> float:
    """The join / bare ratio ``case`` could reach if its view cost the server no more than the
    bare view and no core ever idled: what Redis and PostgreSQL spend on it, on the same
    cores, is then all it takes from the bare view's throughput."""
    bare, join = run["rest"]["bare_drf"]["machine_us"], run["rest"][case]["machine_us"]
    stores = sum(join[k] - bare[k] for k in ("postgres", "redis"))
    total = sum(bare.values())
    return total / (total + max(0.0, stores))


def split_markdown(report: dict) -> str:
    rows = []
    for run in report["runs"]:
        for case, label in CASES.items():
            figures = run["rest"][case]
            parts = " | ".join(f"{figures['machine_us'][part]:,.0f}" for part in PARTS)
            total = sum(figures["machine_us"].values())
            rows.append(
                f"| {run['server']} | {label} | {figures['rps']:,.0f} | {total:,.0f} | {parts} |"
            )
    ceilings = "; ".join(
        f"{run['server']} {ceiling(run, 'join_new'):.2f} and {ceiling(run, 'join_returning'):.2f}"
        for run in report["runs"]
    )
    return "\n".join(
        [
            "**Where the machine's time goes.** Redis and PostgreSQL run on the same "
            f"{os.cpu_count()} cores as the servers and the load generator, so what they spend "
            "on a join is taken from the servers. Per request (microseconds, medians of the "
            "rounds): the machine's time (cores x the round's length / requests), then the "
            "server and its workers, PostgreSQL's processes, Redis, the load generator, "
            "everything else (kernel threads, this script, other tenants) and idle cores, from "
            "/proc:",
            "",
            "| server | request | req/s | machine us | server | PostgreSQL | Redis "
            "| load generator | other | idle |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "A new visitor's join is the bare view plus one Lua script (its limits, counted "
            "first, then its place and the line's counts), its cookie and one SQL "
            "statement, its entry's row: a single INSERT in autocommit that is its own commit, "
            "because an acknowledged join is never lost (docs/design.md); a returning "
            "visitor's skips the INSERT. Even if the join view cost its server nothing more "
            "than the bare view and no core ever idled, the Redis and PostgreSQL time above "
            f"would cap the join / bare ratio at (new and returning visitor): {ceilings}. "
            "A sync worker sits idle while Redis or PostgreSQL "
            "answers (the idle column); gunicorn's documented worker count fills that time "
            "with other requests, and gthread workers also share the commits of new visitors "
            "that wait at the same moment (the PostgreSQL column; group commit, above). Under "
            "one ASGI process the framework's own cost dominates, so the ratios are higher.",
        ]
    )


def markdown(report: dict) -> str:
    rows, cpu_rows = [], []
    for run in report["runs"]:
        g, r, q, c = run["gate"], run["rest"], run["ratios"], run["cpu_ratios"]
        rows.append(
            f"| {run['server']} | {g['unprotected']['rps']:,.0f} | {g['first_use']['rps']:,.0f} "
            f"| **{q['first_use_over_unprotected']:.2f}** | {g['cached']['rps']:,.0f} "
            f"| **{q['cached_over_unprotected']:.2f}** | {r['bare_drf']['rps']:,.0f} "
            f"| {r['join_new']['rps']:,.0f} | **{q['join_new_over_bare']:.2f}** "
            f"| {r['join_returning']['rps']:,.0f} | {q['join_returning_over_bare']:.2f} |"
        )
        cpu_rows.append(
            f"| {run['server']} | {g['unprotected']['server_cpu_us']:,.0f} "
            f"| {g['first_use']['server_cpu_us']:,.0f} | {c['first_use_over_unprotected']:.2f} "
            f"| {g['cached']['server_cpu_us']:,.0f} | {c['cached_over_unprotected']:.2f} "
            f"| {r['bare_drf']['server_cpu_us']:,.0f} | {r['join_new']['server_cpu_us']:,.0f} "
            f"| {c['join_new_over_bare']:.2f} | {r['join_returning']['server_cpu_us']:,.0f} "
            f"| {c['join_returning_over_bare']:.2f} |"
        )
    local = report["in_process"]
    us, lr = local["cpu_us"], local["ratios"]
    return "\n".join(
        [
            HEADING,
            "",
            f"`{report['command']}` on {report['date']} ({report['machine']}, Python "
            f"{report['python']}, load from {report['loadgen']} in its own process, "
            f"{report['connections']} connections, {report['rounds']} rounds of "
            f"{report['seconds']:g} s per figure in alternating order; req/s are medians, ratios "
            "the median of the rounds' ratios). PostgreSQL + RedisStore, DEBUG off, "
            "Session/CSRF/Auth middleware, the throttles at their defaults; the site is behind "
            "one proxy (`TRUSTED_PROXIES` 1) and every request comes from its own address "
            "(X-Forwarded-For). Every response counted was a 2xx. Load average (1 min) "
            f"{report['load_average']['before'][0]:g} before and "
            f"{report['load_average']['after'][0]:g} after the run"
            + (
                f"; servers and wrk ran at nice {report['nice']} (the machine was shared)."
                if report["nice"]
                else "."
            ),
            "",
            "- **purchase**: the same DRF view with `HasQueuePass` (pass in `Authorization: "
            "QueuePass`, identity from the `tq_visitor` cookie) and without it. *first use*: "
            "every request a different buyer presenting their pass for the first time, as a "
            "buyer's first purchase request does: buyers admitted just before each run (the "
            "workers had been up for a few seconds, as in a sale), one pass and visitor cookie "
            "each, never seen by the server; the unprotected view gets the same headers. "
            "*cached*: one pass on every request (a checkout's later requests). Targets: first "
            f"use >= {TARGETS['first_use_over_unprotected']}, cached >= "
            f"{TARGETS['cached_over_unprotected']} of unprotected.",
            "- **REST join** against a bare DRF view (POST, same middleware). *new visitor* "
            "(the headline): every request a new visitor, so a new entry row (INSERT) and a "
            "cookie; *returning*: visitors already in line joining again (the idempotent path: "
            "one store call for the place and the line's counts, no SQL), each once per run.",
            "",
            "| server | unprotected req/s | first use req/s | ratio | cached pass req/s | ratio "
            "| bare DRF req/s | join (new visitor) req/s | ratio | join (returning) req/s "
            "| ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "The same runs seen as the server's own CPU time per request (user + system of the "
            "server and its workers, from /proc), which another tenant of the machine disturbs "
            "far less than req/s; the ratios are unprotected / protected and bare / join (what "
            "a CPU-bound server would show as throughput). Redis and PostgreSQL time is not in "
            "these figures.",
            "",
            "| server | unprotected us | first use us | ratio | cached pass us | ratio "
            "| bare DRF us | join (new visitor) us | ratio | join (returning) us | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *cpu_rows,
            "",
            "And in one process, with no network and no other process in the loop: CPU time per "
            "request through Django's WSGI handler (same settings, middleware and views; "
            f"{local['requests_per_round']:,} requests per round, "
            f"{report['rounds']} alternating rounds, median of the rounds' ratios):",
            "",
            "| unprotected us | first use us | ratio | cached pass us | ratio | bare DRF (POST) us "
            "| join (new visitor) us | ratio | join (returning) us | ratio |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {us['unprotected']:,.1f} | {us['first_use']:,.1f} "
            f"| **{lr['first_use_over_unprotected']:.2f}** | {us['cached']:,.1f} "
            f"| **{lr['cached_over_unprotected']:.2f}** | {us['bare_drf']:,.1f} "
            f"| {us['join_new']:,.1f} | {lr['join_new_over_bare']:.2f} "
            f"| {us['join_returning']:,.1f} | {lr['join_returning_over_bare']:.2f} |",
            "",
            "A pass's first use in a worker costs one HMAC (the pass: this site's HS256 "
            "signature, checked without PyJWT's full decode), one more (the visitor cookie) and "
            "a few dict lookups, and no store round trip: the buyer was admitted while the "
            "worker listened for ended passes, so the admission is the store's confirmation "
            "(docs/design.md, *Passes and the gate*). A cached pass skips the HMACs too. "
            "Neither runs SQL. The pass's signature on first use, CPU per token over the same "
            f"fresh tokens ({report['rounds']} alternating rounds): "
            f"{report['signatures']['ticketqueue']:.1f} us through ticketqueue's HS256 check, "
            f"{report['signatures']['pyjwt']:.1f} us through PyJWT's `jwt.decode` with the "
            "same pinned algorithm and required claims (it checks the key and every "
            "segment's alphabet on each call; the gate used to read the header with it "
            "first, too); any token not in this site's exact form still goes through PyJWT.",
            "",
            verdict(report),
            "",
            burst_markdown(report["burst"]),
            "",
            split_markdown(report),
            "",
            "Raw figures: `bench/results/gate.json`.",
            "",
        ]
    )


def write_docs(section: str) -> None:
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 1 s smoke run; writes nothing")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--servers",
        default=None,
        help="default: all four; --quick: one of each kind (gunicorn, gthread, uvicorn)",
    )
    parser.add_argument("--threads", type=int, default=16, help="joining threads in the burst")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--nice", type=int, default=0, help="niceness of servers and load (e.g. -10, as root)"
    )
    parser.add_argument("--loadgen-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global NICE
    NICE = args.nice

    if args.loadgen_worker:
        spec = json.loads(Path(args.loadgen_worker).read_text())
        print(json.dumps(asyncio.run(_load(*spec))))
        return 0

    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    secs, rounds = (1.0, 1) if args.quick else (args.duration, args.rounds)
    if args.servers is None:  # the documented worker count is the 2-worker code path again
        full = "gunicorn,gunicorn-documented,gunicorn-gthread,uvicorn"
        args.servers = "gunicorn,gunicorn-gthread,uvicorn" if args.quick else full

    load_before = os.getloadavg()
    ensure_database()
    setup_django()
    reset_queues()
    bench = Bench(loadgen, args.connections, secs, rounds)
    try:
        returning = returning_visitors(bench.rows_needed(secs))
        runs = [bench.run(kind, returning) for kind in args.servers.split(",")]
        local = in_process(rounds, 300 if args.quick else 3000, returning)
        print("in process (CPU per request through the WSGI handler)", flush=True)
        for name, value in local["cpu_us"].items():
            print(f"  {name:16} {value:7.1f} us  {local['samples'][name]}", flush=True)
        for name, value in local["ratios"].items():
            print(f"  {name:30} {value:.2f}", flush=True)
        signatures = signature_check(rounds, 300 if args.quick else 3000)
        print(
            "pass signature, first use: "
            + ", ".join(f"{k} {v:.1f} us" for k, v in signatures.items()),
            flush=True,
        )
        together = burst(args.threads, secs, rounds)
        print(f"new visitors from {args.threads} threads in one process", flush=True)
        for name, figures in together["median"].items():
            print(f"  {name:8} " + ", ".join(f"{k} {v:,.2f}" for k, v in figures.items()))
        for name, value in together["ratios"].items():
            print(f"  {name:34} {value:.2f}", flush=True)
    finally:
        drop_queues()

    load_after = [round(x, 2) for x in os.getloadavg()]
    report = {
        **run_header("gate_bench.py"),
        "loadgen": loadgen,
        "connections": args.connections,
        "rounds": rounds,
        "seconds": secs,
        "targets": TARGETS,
        "nice": args.nice,
        "load_average": {"before": [round(x, 2) for x in load_before], "after": load_after},
        "runs": runs,
        "in_process": local,
        "signatures": signatures,
        "burst": together,
    }
    section = markdown(report)
    print()
    print(section)
    if not (args.no_write or args.quick):
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        write_docs(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
