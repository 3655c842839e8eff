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
                 (--sockets daphne: daphne instead)
    celery       a worker running the queue ticks (admission, expiry, broadcasts)
    celery beat  the schedule that sends a tick every second

Ctrl-C (or SIGTERM) stops everything; if any process dies, the rest are stopped and the exit
code is 1. The ports are fixed by deploy/nginx.conf.
"""

from __future__ import annotations

import argparse
import contextlib
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

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
VAR = Path(os.environ.get("DEMO_VAR_DIR", ROOT / "var"))
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
PUBLIC_URL = "http://127.0.0.1:8080/"
GUNICORN_PORT = 8101
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

    def start(self, env: dict[str, str]) -> None:
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
        self.reader = threading.Thread(target=self._relay, daemon=True)
        self.reader.start()

    def _relay(self) -> None:
        assert self.popen and self.popen.stdout
        prefix = f"\033[{self.color}m{self.name:>14} |\033[0m "
        for line in self.popen.stdout:
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
        "4096",
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
            for port in SOCKET_PORTS
        ],
        Proc(
            "celery worker",
            [
                str(bin_ / "celery"),
                "-A",
                "demo_project",
                "worker",
                "--loglevel",
                "WARNING",
                "--concurrency",
                str(args.celery_concurrency),
                "--without-gossip",
                "--without-mingle",
            ],
        ),
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
                str(NGINX_CONF),
                "-e",
                str(VAR / "log" / "nginx-error.log"),
            ],
            stop_signal=signal.SIGQUIT,  # graceful: finish the requests in flight
        ),
    ]
    for i, proc in enumerate(procs):
        proc.color = COLORS[i % len(COLORS)]
    return procs


def wait_ready(procs: list[Proc], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not all(p.running() for p in procs):
            return False
        if all(reachable("127.0.0.1", port) for port in SOCKET_PORTS):
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
    busy = [p for p in (8080, GUNICORN_PORT, *SOCKET_PORTS) if reachable("127.0.0.1", p, 0.3)]
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
    if not wait_ready(procs, args.ready_timeout):
        say("the topology did not come up; stopping")
        stop_all(procs)
        return 1
    say(f"ready: {PUBLIC_URL}  (admin: {PUBLIC_URL}admin/; Ctrl-C stops everything)")
    if args.ready_file:
        args.ready_file.write_text(PUBLIC_URL)

    code = 0
    while not stop.wait(0.5):
        dead = [p for p in procs if not p.running()]
        if dead:
            say(f"{', '.join(p.name for p in dead)} exited; stopping the rest")
            code = 1
            break
    say("stopping")
    stop_all(procs)
    if args.ready_file:
        args.ready_file.unlink(missing_ok=True)
    say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
