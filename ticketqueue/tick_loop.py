"""The tick loop: a tick every ``TICK_INTERVAL`` and a cleanup every minute, run by
``manage.py ticketqueue_ticker`` or by the embedded thread of a serving process (the default
with the in-process store), which starts itself in a process that serves requests.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections

from . import conf
from .courier import Courier, get_courier
from .models import Queue
from .retention import cleanup
from .ticker import run_tick

__all__ = [
    "SERVERS",
    "EmbeddedTicker",
    "LoopReport",
    "embedded",
    "is_serving_process",
    "run_loop",
    "start_embedded_if_serving",
]

log = logging.getLogger("ticketqueue")


@dataclass
class LoopReport:
    ticks: int = 0
    admitted: int = 0
    cleanups: int = 0


def run_loop(
    stop: threading.Event,
    *,
    ticks: int | None = None,
    interval: float | None = None,
    batches: int | None = None,
    cleanup_every: float = 60.0,
    timer: Callable[[], float] = time.monotonic,
    courier: Courier | None = None,
    queues: Sequence[Queue] | None = None,
) -> LoopReport:
    """Tick every ``interval`` seconds until ``stop`` is set (or ``ticks`` ticks ran), with a
    cleanup every ``cleanup_every`` seconds (0: never). Errors are logged, never fatal.
    ``queues``: tick these only (default: every tickable queue, looked up each tick).
    Notifications go to the ``courier``'s thread (the process's own by default): a slow
    notifier never delays the next tick."""
    from .conf import queue_settings

    courier = courier or get_courier()
    interval = float(interval or queue_settings.TICK_INTERVAL)
    report = LoopReport()
    next_cleanup = timer() + cleanup_every if cleanup_every else math.inf
    start = timer()
    while not stop.is_set() and (ticks is None or report.ticks < ticks):
        try:
            result = run_tick(
                queues=queues,
                batches=batches,
                interval=interval,
                notify=courier.turn,
                tell_absent=courier.send,
                timer=timer,
                sleep=lambda s: stop.wait(s),
            )
            report.admitted += result.admitted
            if timer() >= next_cleanup:
                cleanup()
                report.cleanups += 1
                next_cleanup = timer() + cleanup_every
        except Exception:
            log.exception("tick loop: tick failed")
        finally:
            close_old_connections()
        report.ticks += 1
        if ticks is not None and report.ticks >= ticks:
            break
        # Keep the beat: the next tick starts at start + k * interval, skipping missed ones.
        now = timer()
        beats = math.floor((now - start) / interval) + 1
        stop.wait(max(0.0, start + beats * interval - now))
    return report


class EmbeddedTicker:
    """The tick loop in a daemon thread of the serving process (the embedded default)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pid: int | None = None
        self._mutex = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()

    def ensure_started(self) -> bool:
        """Start the thread unless it runs in this process already; True if started now."""
        if self.running:
            return False
        with self._mutex:
            if self.running:
                return False
            self._stop = threading.Event()
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="ticketqueue-ticker", daemon=True
            )
            self._thread.start()
        log.info("embedded ticker started", extra={"pid": self._pid})
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        try:
            run_loop(self._stop)
        finally:
            close_old_connections()


embedded = EmbeddedTicker()

#: Programs that serve requests; ``manage.py runserver`` is recognised separately.
SERVERS = frozenset({"daphne", "uvicorn", "gunicorn", "hypercorn", "granian", "waitress-serve"})


def is_serving_process(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether this process serves requests: runserver (its reloader's child, not the
    watcher), or an ASGI/WSGI server. Never a test run, a migration or another command."""
    if not argv:
        return False
    program = os.path.basename(argv[0])
    if program == "__main__.py":  # python -m daphne
        program = os.path.basename(os.path.dirname(argv[0]))
    if program in SERVERS:
        return True
    if len(argv) > 1 and argv[1] == "runserver":
        return "--noreload" in argv or environ.get("RUN_MAIN") == "true"
    return False


def _in_a_test_run() -> bool:
    """A pytest run says so (``conf.embedded_ticker_allowed``); under ``manage.py test`` the
    test client's requests are no sign of a serving process either."""
    return not conf.embedded_ticker_allowed or (len(sys.argv) > 1 and sys.argv[1] == "test")


def _start_on_request(**kwargs: Any) -> None:
    if not embedded.running and not _in_a_test_run():
        embedded.ensure_started()


def start_embedded_if_serving() -> bool:
    """Called from AppConfig.ready: with EMBEDDED_TICKER on, start the ticker thread in a
    serving process, and otherwise on the first request of a process that serves some
    (a server this module does not recognise); never in tests or other commands."""
    from django.core.signals import request_started

    if not conf.embedded_ticker_on() or _in_a_test_run():
        return False
    request_started.connect(_start_on_request, dispatch_uid="ticketqueue.embedded_ticker")
    if is_serving_process(sys.argv, os.environ):
        return embedded.ensure_started()
    return False
