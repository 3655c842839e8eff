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
import platform
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results" / "gate.json"
DOCS = ROOT / "docs" / "benchmarks.md"
HEADING = "## Purchase gate and REST API (issue 4)"
PYTHON = sys.executable
BIN = Path(PYTHON).parent
TARGETS = {"gate": 0.9, "join": 0.6}

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
    for queue in Queue.objects.filter(slug__in=["bench", "bench-line"]):
        store.delete(queue.store_id)
        queue.delete()
    for slug, mode in (("bench", "off"), ("bench-line", "always")):
        queue = Queue.objects.create(slug=slug, name=slug, mode=mode, purchase_window=3600)
        services.configure(queue)


def drop_queues() -> None:
    from ticketqueue.models import Queue
    from ticketqueue.store import get_store

    for queue in Queue.objects.filter(slug__in=["bench", "bench-line"]):
        get_store().delete(queue.store_id)
        queue.delete()


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


def run_wrk(url: str, method: str, headers: dict[str, str], conns: int, secs: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "{method}"\n')
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


async def _load(url: str, method: str, headers: dict[str, str], conns: int, secs: float) -> dict:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    lines = [f"{method} {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Length: 0"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    counts = {"ok": 0, "bad": 0}
    stop = time.monotonic() + secs

    async def client() -> None:
        reader = writer = None
        while time.monotonic() < stop:
            if writer is None:
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")  # type: ignore[union-attr]
            status = int(head.split(b" ", 2)[1])
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)  # type: ignore[union-attr]
            counts["ok" if 200 <= status < 300 else "bad"] += 1
            if re.search(rb"(?i)connection:\s*close", head):
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(conns)))
    elapsed = time.monotonic() - started
    total = counts["ok"] + counts["bad"]
    return {"rps": total / elapsed, "requests": total, "non_2xx": counts["bad"], "timeouts": 0}


def run_python(url: str, method: str, headers: dict[str, str], conns: int, secs: float) -> dict:
    spec = json.dumps([url, method, headers, conns, secs])
    out = subprocess.run(  # noqa: S603 - the load generator in its own process
        [PYTHON, __file__, "--loadgen-worker", spec],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=_niced,
    ).stdout
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


class Bench:
    def __init__(self, loadgen: str, conns: int, secs: float, rounds: int) -> None:
        self.load = run_wrk if loadgen == "wrk" else run_python
        self.loadgen = loadgen
        self.conns, self.secs, self.rounds = conns, secs, rounds

    def measure(self, server: Server, cases: dict[str, tuple[str, str, dict[str, str]]]) -> dict:
        """Each case ``rounds`` times, alternating the order, so drift hits all alike."""
        samples: dict[str, list[float]] = {name: [] for name in cases}
        split: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
        names = list(cases)
        for name in names:  # warm-up: imports, connections, the pass confirmed
            path, method, headers = cases[name]
            self.load(server.base + path, method, headers, 4, min(1.0, self.secs))
        for r in range(self.rounds):
            for name in names if r % 2 == 0 else reversed(names):
                path, method, headers = cases[name]
                before, started = server.cpu_parts(), time.monotonic()
                result = self.load(server.base + path, method, headers, self.conns, self.secs)
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

    def run(self, kind: str) -> dict:
        print(f"{SERVER_LABELS[kind]}", flush=True)
        with Server(kind) as server:
            token, visitor = server.join("bench")
            assert token, "the bench queue admits at once"
            _, line_visitor = server.join("bench-line")
            cookie = {"Cookie": f"tq_visitor={visitor}"}
            gate = self.measure(
                server,
                {
                    "unprotected": ("/purchase-open/", "GET", cookie),
                    "protected": (
                        "/purchase/",
                        "GET",
                        {**cookie, "Authorization": f"QueuePass {token}"},
                    ),
                },
            )
            rest = self.measure(
                server,
                {
                    "bare_drf": ("/bare/", "POST", {}),
                    "join_returning": (
                        "/queue/api/queues/bench-line/join/",
                        "POST",
                        {"Cookie": f"tq_visitor={line_visitor}"},
                    ),
                    "join_new": ("/queue/api/queues/bench-line/join/", "POST", {}),
                },
            )
        result = {
            "server": SERVER_LABELS[kind],
            "gate": gate,
            "rest": rest,
            "ratios": {
                "protected_over_unprotected": self.paired(gate, "protected", "unprotected"),
                "join_returning_over_bare": self.paired(rest, "join_returning", "bare_drf"),
                "join_new_over_bare": self.paired(rest, "join_new", "bare_drf"),
            },
            "cpu_ratios": {
                "protected_over_unprotected": self.cpu_ratio(gate, "protected", "unprotected"),
                "join_returning_over_bare": self.cpu_ratio(rest, "join_returning", "bare_drf"),
                "join_new_over_bare": self.cpu_ratio(rest, "join_new", "bare_drf"),
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


def wsgi_cpu_us(
    app: Any,
    start_response: Any,
    method: str,
    path: str,
    headers: dict[str, str],
    n: int,
    query: str = "",
) -> float:
    """CPU microseconds per request of ``n`` bodiless requests through a WSGI ``app``."""
    started = time.process_time()
    for _ in range(n):
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "CONTENT_LENGTH": "0",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http",
            **headers,
        }
        response = app(environ, start_response)
        b"".join(response)
        response.close()
    return (time.process_time() - started) / n * 1e6


def in_process(rounds: int, requests: int) -> dict:
    """CPU time per request through Django's WSGI handler in this process, no network: the
    figure another tenant of the machine disturbs least. Alternating rounds, median ratio."""

    import gate_site

    from ticketqueue import services
    from ticketqueue.identity import new_visitor_cookie
    from ticketqueue.models import Queue

    bench_queue, line = Queue.objects.get(slug="bench"), Queue.objects.get(slug="bench-line")
    visitor, signed = new_visitor_cookie()
    token = services.join(bench_queue, f"anon:{visitor}").pass_token
    services.join(line, f"anon:{visitor}")
    cookie = {"HTTP_COOKIE": f"tq_visitor={signed}"}
    cases = {
        "unprotected": ("GET", "/purchase-open/", cookie),
        "protected": ("GET", "/purchase/", {**cookie, "HTTP_AUTHORIZATION": f"QueuePass {token}"}),
        "bare_drf": ("POST", "/bare/", {}),
        "join_returning": ("POST", "/queue/api/queues/bench-line/join/", cookie),
        "join_new": ("POST", "/queue/api/queues/bench-line/join/", {}),
    }

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    def cpu_us(method: str, path: str, headers: dict[str, str], n: int) -> float:
        return wsgi_cpu_us(gate_site.application, start_response, method, path, headers, n)

    samples: dict[str, list[float]] = {name: [] for name in cases}
    for case in cases.values():
        cpu_us(*case, max(50, requests // 10))  # warm-up
    for r in range(rounds):
        for name in cases if r % 2 == 0 else reversed(list(cases)):
            samples[name].append(cpu_us(*cases[name], requests))
    paired = {
        "protected_over_unprotected": ("protected", "unprotected"),
        "join_returning_over_bare": ("join_returning", "bare_drf"),
        "join_new_over_bare": ("join_new", "bare_drf"),
    }
    return {
        "requests_per_round": requests,
        "cpu_us": {name: statistics.median(values) for name, values in samples.items()},
        "samples": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        "ratios": {
            key: statistics.median(
                b / a for a, b in zip(samples[over], samples[under], strict=True)
            )
            for key, (over, under) in paired.items()
        },
    }


def machine_cpu_seconds() -> float:
    """CPU time of the whole machine (all processes: these joins, Redis, PostgreSQL)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    busy = sum(fields[:3]) + sum(fields[5:7])  # user nice system, irq softirq
    return busy / os.sysconf("SC_CLK_TCK")


def burst(threads: int, secs: float, rounds: int) -> dict:
    """New visitors joining from ``threads`` threads of one process (a threaded server's
    worker), with the group commit against one commit per join, alternating rounds."""
    import threading
    import uuid

    from django.db import connection

    from ticketqueue import services
    from ticketqueue.core import GroupCommit
    from ticketqueue.models import Queue

    line = Queue.objects.get(slug="bench-line")
    statements = [0]

    def insert(rows: Any) -> None:
        statements[0] += 1
        services._insert_entries(rows)

    class OneCommitEach:
        def submit(self, values: Any) -> None:
            insert([values])

    writers = {"grouped": GroupCommit(insert), "alone": OneCommitEach()}
    samples: dict[str, dict[str, list[float]]] = {
        name: {"joins_per_s": [], "machine_cpu_us": [], "statements_per_join": []}
        for name in writers
    }
    original = services._new_rows
    try:
        for r in range(rounds):
            for name in writers if r % 2 == 0 else reversed(list(writers)):
                services._new_rows = writers[name]  # type: ignore[assignment]
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
        services._new_rows = original
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
        f"**Targets** (servers in the tables' order). Gate >= {TARGETS['gate']}: "
        f"{show('protected_over_unprotected', TARGETS['gate'])}. REST join >= "
        f"{TARGETS['join']}, returning visitor: {show('join_returning_over_bare', TARGETS['join'])}"
        f"; new visitor: {show('join_new_over_bare', TARGETS['join'])}. {spread(report)}"
    )


def spread(report: dict) -> str:
    """How far apart the rounds' own gate ratios were: the noise the medians sit in."""
    ranges = []
    for run in report["runs"]:
        gate = run["gate"]
        pairs = zip(gate["protected"]["samples"], gate["unprotected"]["samples"], strict=True)
        ratios = [a / b for a, b in pairs]
        ranges.append(f"{min(ratios):.2f}-{max(ratios):.2f}")
    return f"The rounds' own gate ratios ranged {', '.join(ranges)} (same order)."


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


CASES = {"bare_drf": "bare DRF", "join_returning": "join, returning", "join_new": "join, new"}


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
        f"{run['server']} {ceiling(run, 'join_returning'):.2f} and {ceiling(run, 'join_new'):.2f}"
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
            "A returning visitor's join is the bare view plus one store round trip (one Lua "
            "script: its place and the line's counts); a new visitor's adds its cookie and one "
            "SQL statement, its entry's row: a single INSERT in autocommit that is its own "
            "commit, because an acknowledged join is never lost (docs/design.md). Even if the "
            "join view cost its server nothing more than the bare view and no core ever idled, "
            "the Redis and PostgreSQL time above would cap the join / bare ratio at (returning "
            f"and new visitor): {ceilings}. A sync worker sits idle while Redis or PostgreSQL "
            "answers (the idle column); gunicorn's documented worker count fills that time "
            "with other requests, and gthread workers also share the commits of new visitors "
            "that wait at the same moment (the PostgreSQL column; group commit, above). Under "
            "one ASGI process the framework's own cost dominates, so the ratios are higher.",
        ]
    )


def markdown(report: dict) -> str:
    rows = []
    for run in report["runs"]:
        g, r, q = run["gate"], run["rest"], run["ratios"]
        rows.append(
            f"| {run['server']} | {g['unprotected']['rps']:,.0f} | {g['protected']['rps']:,.0f} "
            f"| **{q['protected_over_unprotected']:.2f}** | {r['bare_drf']['rps']:,.0f} "
            f"| {r['join_returning']['rps']:,.0f} | **{q['join_returning_over_bare']:.2f}** "
            f"| {r['join_new']['rps']:,.0f} | {q['join_new_over_bare']:.2f} |"
        )
    cpu_rows = []
    for run in report["runs"]:
        g, r, c = run["gate"], run["rest"], run["cpu_ratios"]
        cpu_rows.append(
            f"| {run['server']} | {g['unprotected']['server_cpu_us']:,.0f} "
            f"| {g['protected']['server_cpu_us']:,.0f} | {c['protected_over_unprotected']:.2f} "
            f"| {r['bare_drf']['server_cpu_us']:,.0f} "
            f"| {r['join_returning']['server_cpu_us']:,.0f} "
            f"| {c['join_returning_over_bare']:.2f} | {r['join_new']['server_cpu_us']:,.0f} "
            f"| {c['join_new_over_bare']:.2f} |"
        )
    return "\n".join(
        [
            HEADING,
            "",
            f"`{report['command']}` on {report['date']} ({report['machine']}, Python "
            f"{report['python']}, load from {report['loadgen']} in its own process, "
            f"{report['connections']} connections, {report['rounds']} rounds of "
            f"{report['seconds']:g} s per figure in alternating order; req/s are medians, ratios "
            "the median of the rounds' ratios). PostgreSQL + RedisStore, DEBUG off, "
            "Session/CSRF/Auth middleware. Every response counted was a 2xx. Load average "
            f"(1 min) {report['load_average']['before'][0]:g} before and "
            f"{report['load_average']['after'][0]:g} after the run"
            + (
                f"; servers and wrk ran at nice {report['nice']} (the machine was shared)."
                if report["nice"]
                else "."
            ),
            "",
            "- **purchase**: the same DRF view with `HasQueuePass` (pass in `Authorization: "
            "QueuePass`, identity from the `tq_visitor` cookie) and without it. Target: "
            f"protected / unprotected >= {TARGETS['gate']}.",
            "- **REST join** against a bare DRF view (POST, same middleware). *returning*: a "
            "visitor joining again (the idempotent path: one store call for the place and the "
            "line's counts, no SQL); *new*: every request a new visitor, so a new entry row "
            f"(INSERT) and a cookie. Target: join / bare >= {TARGETS['join']}.",
            "",
            "| server | unprotected req/s | protected req/s | ratio | bare DRF req/s "
            "| join (returning) req/s | ratio | join (new visitor) req/s | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "The same runs seen as the server's own CPU time per request (user + system of the "
            "server and its workers, from /proc), which another tenant of the machine disturbs "
            "far less than req/s; the ratios are unprotected / protected and bare / join (what "
            "a CPU-bound server would show as throughput). Redis and PostgreSQL time is not in "
            "these figures.",
            "",
            "| server | unprotected us | protected us | ratio | bare DRF us "
            "| join (returning) us | ratio | join (new visitor) us | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *cpu_rows,
            "",
            "And in one process, with no network and no other process in the loop: CPU time per "
            "request through Django's WSGI handler (same settings, middleware and views; "
            f"{report['in_process']['requests_per_round']:,} requests per round, "
            f"{report['rounds']} alternating rounds, median of the rounds' ratios):",
            "",
            "| unprotected us | protected us | ratio | bare DRF (POST) us | join (returning) us "
            "| ratio | join (new visitor) us | ratio |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            "| {u:,.1f} | {p:,.1f} | **{g:.2f}** | {b:,.1f} | {j:,.1f} | {r:.2f} | {n:,.1f} "
            "| {nr:.2f} |".format(
                u=report["in_process"]["cpu_us"]["unprotected"],
                p=report["in_process"]["cpu_us"]["protected"],
                g=report["in_process"]["ratios"]["protected_over_unprotected"],
                b=report["in_process"]["cpu_us"]["bare_drf"],
                j=report["in_process"]["cpu_us"]["join_returning"],
                r=report["in_process"]["ratios"]["join_returning_over_bare"],
                n=report["in_process"]["cpu_us"]["join_new"],
                nr=report["in_process"]["ratios"]["join_new_over_bare"],
            ),
            "",
            "The gate costs one JWT verification (cached per token after the first), one "
            "HMAC (the visitor cookie, also cached) and a few dict lookups: the pass was "
            "confirmed with the store once per process and its end would arrive by pub/sub "
            "(docs/design.md, *Passes and the gate*), so it adds no round trip and no SQL.",
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
        "--servers", default="gunicorn,gunicorn-documented,gunicorn-gthread,uvicorn"
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
        url, method, headers, conns, secs = json.loads(args.loadgen_worker)
        print(json.dumps(asyncio.run(_load(url, method, headers, conns, secs))))
        return 0

    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    secs, rounds = (1.0, 1) if args.quick else (args.duration, args.rounds)

    load_before = os.getloadavg()
    ensure_database()
    setup_django()
    reset_queues()
    bench = Bench(loadgen, args.connections, secs, rounds)
    try:
        runs = [bench.run(kind) for kind in args.servers.split(",")]
        local = in_process(rounds, 300 if args.quick else 3000)
        print("in process (CPU per request through the WSGI handler)", flush=True)
        for name, value in local["cpu_us"].items():
            print(f"  {name:16} {value:7.1f} us  {local['samples'][name]}", flush=True)
        for name, value in local["ratios"].items():
            print(f"  {name:30} {value:.2f}", flush=True)
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
        "command": " ".join([".venv/bin/python", "bench/gate_bench.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "loadgen": loadgen,
        "connections": args.connections,
        "rounds": rounds,
        "seconds": secs,
        "targets": TARGETS,
        "nice": args.nice,
        "load_average": {"before": [round(x, 2) for x in load_before], "after": load_after},
        "runs": runs,
        "in_process": local,
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
