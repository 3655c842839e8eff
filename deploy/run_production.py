#!/usr/bin/env python
"""Run the demo shop's production-like topology on this machine, supervised, behind one port.

    .venv/bin/python deploy/run_production.py [--reset] [--ready-file PATH]

PostgreSQL and Redis must be running (127.0.0.1:5432 and :6379 unless PG*/REDIS_URL say
otherwise). It prepares the database (create, migrate, collectstatic, demo data and admin
login), then starts and watches:

    nginx        :8080, the one public port: /ws/ to the socket processes, /static/ from
                 disk, / to gunicorn
    gunicorn     127.0.0.1:8101, WSGI workers for pages, the REST API and purchases
    uvicorn x2   127.0.0.1:8201 and :8202, ASGI processes holding the queue's WebSockets
                 (--sockets daphne: daphne instead; --socket-processes N: N of them, on
                 8201, 8202, ...)
    celery       a worker running the queue ticks (admission, expiry, broadcasts;
                 --celery-workers N: N of them)
    celery beat  the schedule that sends a tick every second

Ctrl-C (or SIGTERM) stops everything. A process that dies is restarted, after 1 s and then
doubling delays up to 30 s while it keeps dying, and each restart is logged: the state lives
in Redis and PostgreSQL, so the sale goes on. The ports are fixed by deploy/nginx.conf (for
another number of socket processes, a copy of it under var/run/ lists theirs).

The store may live on a Redis Cluster: TICKETQUEUE_REDIS_URL and TICKETQUEUE_REDIS_CLUSTER=1
(demo_project/settings_production.py); Celery's broker and the cache stay on REDIS_URL.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
VAR = Path(os.environ.get("DEMO_VAR_DIR", ROOT / "var"))
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
PUBLIC_URL = "http://127.0.0.1:8080/"
GUNICORN_PORT = 8101
#: The socket processes' ports: 8201, 8202, ... (two unless --socket-processes says more).
FIRST_SOCKET_PORT = 8201
SOCKET_PORTS = (8201, 8202)
SETTINGS = "demo_project.settings_production"
STOP_TIMEOUT = 15.0

COLORS = ["36", "33", "35", "32", "34", "31", "96"]


def say(message: str) -> None:
    print(f"\033[1mrun_production |\033[0m {message}", flush=True)


@dataclass
class Proc:
    name: str
    argv: list[str]
    #: signal asking the process to stop quickly but cleanly
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen | None = None
    color: str = "0"
    reader: threading.Thread | None = field(default=None, repr=False)
    #: When it was last started (monotonic), how often it was restarted, and when its next
    #: restart is due (None: it is not waiting for one).
    started_at: float = 0.0
    restarts: int = 0
    restart_at: float | None = None
    backoff: float = 0.0

    def start(self, env: dict[str, str]) -> None:
        self.started_at = time.monotonic()
        self.popen = subprocess.Popen(  # noqa: S603 - our own argv
            self.argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopping it stops its children
            bufsize=1,
            text=True,
            errors="replace",
        )
        self.reader = threading.Thread(target=self._relay, args=(self.popen,), daemon=True)
        self.reader.start()

    def _relay(self, popen: subprocess.Popen) -> None:
        """Copy this run's output (a restart has a reader of its own) until it ends."""
        assert popen.stdout
        prefix = f"\033[{self.color}m{self.name:>14} |\033[0m "
        with popen.stdout:
            for line in popen.stdout:
                sys.stdout.write(prefix + line)
                sys.stdout.flush()

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_main(self, sig: int) -> None:
        """Ask the main process; it stops its own children (gunicorn and Celery workers,
        nginx workers) in order, which signalling the whole group would cut short."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)

    def kill_group(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)


def raise_fd_limit() -> int:
    """Sockets are files: let every process hold as many as the machine allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(  # noqa: S603 - our own argv
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, check=True
    )


def prepare(env: dict[str, str], reset: bool, demo_data: bool) -> None:
    """Database, Redis, static files and demo data: everything the processes expect."""
    code = f"from deploy.provision import provision; provision(reset={reset!r})"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)  # noqa: S603
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "collectstatic", "--noinput", "-v", "0")
    if demo_data:
        manage(env, "load_demo_data")


def uvicorn(port: int) -> list[str]:
    """The recommended socket server (docs/protocol.md, "Serving"): the lean protocol class,
    no per-message compression, nothing larger than a client message read."""
    return [
        str(VENV_BIN / "uvicorn"),
        "demo_project.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # A sale opens with a burst of handshakes: listen as deep as nginx does (the
        # default is 2048).
        "--backlog",
        "4096",
        "--ws",
        "ticketqueue.live.uvicorn:WebSocketProtocol",
        "--ws-per-message-deflate",
        "false",
        "--ws-max-size",
        "8192",
        "--proxy-headers",
        "--lifespan",
        "off",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def daphne(port: int) -> list[str]:
    return [
        str(VENV_BIN / "daphne"),
        # Twisted's default listen backlog is 50: a burst of handshakes overflows it.
        "-e",
        f"tcp:port={port}:interface=127.0.0.1:backlog=4096",
        # Thousands of handshakes at once queue up; the default 5 s drops them.
        "--websocket_connect_timeout",
        "60",
        "--proxy-headers",
        "--ping-interval",
        "30",
        # Client messages are at most WS_MAX_MESSAGE (2048) bytes: read nothing
        # larger (daphne's default is 1 MiB). docs/protocol.md, "Serving".
        "--websocket-max-message-size",
        "4096",
        "--websocket-max-frame-size",
        "4096",
        "-v",
        "0",  # warnings only: no line per socket
        "demo_project.asgi:application",
    ]


SOCKET_SERVERS = {"uvicorn": uvicorn, "daphne": daphne}


def processes(args: argparse.Namespace) -> list[Proc]:
    bin_ = VENV_BIN
    procs = [
        Proc(
            "gunicorn",
            [
                str(bin_ / "gunicorn"),
                "demo_project.wsgi:application",
                "--bind",
                f"127.0.0.1:{GUNICORN_PORT}",
                "--workers",
                str(args.gunicorn_workers),
                *(
                    ["--worker-class", "gthread", "--threads", str(args.gunicorn_threads)]
                    if args.gunicorn_threads
                    else []
                ),
                # The application (and every view: demo_project/wsgi.py) is loaded once,
                # before the workers fork, rather than by each worker's first requests.
                "--preload",
                "--backlog",
                "4096",
                "--graceful-timeout",
                "10",
                # An overloaded sale queues requests; a worker busy past the default 30 s
                # would be killed mid-purchase.
                "--timeout",
                "120",
                # nginx keeps upstream connections open; a gthread worker serves every
                # request of the connections it accepted, so a few pooled connections could
                # all sit on one worker: close after each response (sync workers always do).
                "--keep-alive",
                "0" if args.gunicorn_threads else "65",
                "--log-level",
                "warning",
            ],
        ),
        *[
            Proc(f"{args.sockets}:{port}", SOCKET_SERVERS[args.sockets](port))
            for port in socket_ports(args)
        ],
        *[
            Proc(
                f"celery worker {i}" if args.celery_workers > 1 else "celery worker",
                [
                    str(bin_ / "celery"),
                    "-A",
                    "demo_project",
                    "worker",
                    "--hostname",
                    f"worker{i}@%h",
                    "--loglevel",
                    "WARNING",
                    "--concurrency",
                    str(args.celery_concurrency),
                    "--without-gossip",
                    "--without-mingle",
                ],
            )
            for i in range(1, args.celery_workers + 1)
        ],
        Proc(
            "celery beat",
            [
                str(bin_ / "celery"),
                "-A",
                "demo_project",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(VAR / "celerybeat-schedule"),
            ],
        ),
        Proc(
            "nginx",
            [
                args.nginx,
                "-p",
                f"{ROOT}/",
                "-c",
                str(nginx_conf(socket_ports(args))),
                "-e",
                str(VAR / "log" / "nginx-error.log"),
                # Started by root, nginx's workers would run as "nobody", who may not read a
                # checkout or write the request-body buffers under var/ (bodies over 16 KB
                # then failed with 500): they run as whoever started the topology.
                *(["-g", f"user {getpass.getuser()};"] if os.geteuid() == 0 else []),
            ],
            stop_signal=signal.SIGQUIT,  # graceful: finish the requests in flight
        ),
    ]
    for i, proc in enumerate(procs):
        proc.color = COLORS[i % len(COLORS)]
    return procs


class Supervisor:
    """Restarts a process that died, with backoff, instead of stopping the sale: the state
    lives in Redis and PostgreSQL, so a restarted worker, beat or server picks up where the
    dead one was (a tick's journal, a lost socket's reconnect). Every restart is logged.

    The delay doubles from ``first_backoff`` up to ``max_backoff`` while a process keeps
    dying soon after its start; one that ran ``stable_after`` seconds starts over from the
    first delay.
    """

    def __init__(
        self,
        procs: list[Proc],
        env: dict[str, str],
        *,
        first_backoff: float = 1.0,
        max_backoff: float = 30.0,
        stable_after: float = 60.0,
        clock: Any = time.monotonic,
    ) -> None:
        self.procs, self.env, self.clock = procs, env, clock
        self.first_backoff, self.max_backoff = first_backoff, max_backoff
        self.stable_after = stable_after

    def check(self) -> None:
        """One look at every process: schedule the restart of the dead, start the due."""
        now = self.clock()
        for proc in self.procs:
            if proc.restart_at is None:
                if proc.running():
                    continue
                code = proc.popen.returncode if proc.popen is not None else None
                proc.kill_group()  # whatever the dead main process left behind
                if now - proc.started_at >= self.stable_after or not proc.backoff:
                    proc.backoff = self.first_backoff
                else:
                    proc.backoff = min(proc.backoff * 2, self.max_backoff)
                proc.restart_at = now + proc.backoff
                say(
                    f"{proc.name} exited (code {code}); restarting it in {proc.backoff:g}s "
                    f"(restart {proc.restarts + 1})"
                )
            elif now >= proc.restart_at:
                if proc.reader is not None:
                    proc.reader.join(timeout=1)
                proc.restart_at = None
                proc.restarts += 1
                proc.start(self.env)
                say(f"{proc.name} restarted (pid {proc.popen.pid if proc.popen else '?'})")


def socket_ports(args: argparse.Namespace) -> list[int]:
    return [FIRST_SOCKET_PORT + i for i in range(args.socket_processes)]


def nginx_conf(ports: list[int]) -> Path:
    """deploy/nginx.conf as it is for the two socket processes it names; for another number,
    a copy under var/run/ whose socket upstream lists theirs."""
    if ports == list(SOCKET_PORTS):
        return NGINX_CONF
    lines = [f"        server 127.0.0.1:{port} max_fails=0;" for port in ports]
    text = NGINX_CONF.read_text().replace(
        "\n".join(f"        server 127.0.0.1:{port} max_fails=0;" for port in SOCKET_PORTS),
        "\n".join(lines),
    )
    rendered = VAR / "run" / "nginx.conf"
    rendered.write_text(text)
    return rendered


def wait_ready(procs: list[Proc], ports: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not all(p.running() for p in procs):
            return False
        if all(reachable("127.0.0.1", port) for port in ports):
            try:
                with urllib.request.urlopen(PUBLIC_URL, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.3)
    return False


def stop_all(procs: list[Proc]) -> None:
    # The front door first, then the servers, then the ticks.
    for proc in procs[::-1]:
        proc.signal_main(proc.stop_signal)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in procs:
        if proc.popen is None:
            continue
        try:
            proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{proc.name} did not stop in {STOP_TIMEOUT:.0f}s: killing it")
            proc.kill_group()
            proc.popen.wait()
    for proc in procs:
        proc.kill_group()  # anything a main process left behind in its group
        if proc.reader is not None:
            proc.reader.join(timeout=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reset",
        action="store_true",
        help="Drop the demo database and empty the demo's Redis database first.",
    )
    parser.add_argument("--no-demo-data", action="store_true", help="Skip load_demo_data.")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument(
        "--gunicorn-threads", type=int, default=0, help="gthread workers of N threads (0: sync)"
    )
    parser.add_argument(
        "--sockets",
        choices=sorted(SOCKET_SERVERS),
        default="uvicorn",
        help="The ASGI server of the socket processes.",
    )
    parser.add_argument(
        "--socket-processes", type=int, default=2, help="ASGI socket processes (ports 8201...)."
    )
    parser.add_argument("--celery-workers", type=int, default=1)
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument(
        "--ready-file", type=Path, help="Write the public URL to this file once everything answers."
    )
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="Level of the ticketqueue and shop loggers (INFO logs every join and admission).",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    limit = raise_fd_limit()
    for sub in ("run", "log", "nginx"):
        (VAR / sub).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    env.setdefault("DEMO_VAR_DIR", str(VAR))
    env.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
    env["PYTHONUNBUFFERED"] = "1"
    env["DEMO_LOG_LEVEL"] = args.log_level
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

    if not Path(args.nginx).exists():
        say("nginx is not installed: apt-get install nginx")
        return 2
    ports = socket_ports(args)
    busy = [p for p in (8080, GUNICORN_PORT, *ports) if reachable("127.0.0.1", p, 0.3)]
    if busy:
        say(f"ports already in use: {busy} (another run still up?)")
        return 2

    say(f"preparing ({env['DJANGO_SETTINGS_MODULE']}; open files per process: {limit})")
    try:
        prepare(env, reset=args.reset, demo_data=not args.no_demo_data)
    except subprocess.CalledProcessError as exc:
        say(f"preparation failed: {exc}")
        return 1
    if stop.is_set():
        return 0

    procs = processes(args)
    for proc in procs:
        proc.start(env)
    if args.ready_file:
        args.ready_file.unlink(missing_ok=True)
    if not wait_ready(procs, ports, args.ready_timeout):
        say("the topology did not come up; stopping")
        stop_all(procs)
        return 1
    say(f"ready: {PUBLIC_URL}  (admin: {PUBLIC_URL}admin/; Ctrl-C stops everything)")
    if args.ready_file:
        args.ready_file.write_text(PUBLIC_URL)

    supervisor = Supervisor(procs, env)
    while not stop.wait(0.5):
        supervisor.check()
    say("stopping")
    stop_all(procs)
    if args.ready_file:
        args.ready_file.unlink(missing_ok=True)
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
