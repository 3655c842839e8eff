"""Run the tick loop without Celery, for small sites: ``manage.py ticketqueue_ticker``."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ... import tick_loop
from ...conf import queue_settings


class Command(BaseCommand):
    help = (
        "Tick every running queue (expiry, admission, notifications) every TICK_INTERVAL "
        "seconds until stopped, with a cleanup each minute. Safe next to Celery beat."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--ticks", type=int, help="Stop after this many ticks.")
        parser.add_argument("--interval", type=float, help="Seconds per tick (TICK_INTERVAL).")
        parser.add_argument("--batches", type=int, help="Admission rounds per tick (TICK_BATCHES).")
        parser.add_argument(
            "--cleanup-every",
            type=float,
            default=60.0,
            help="Seconds between cleanups (abandonment, retention); 0 for none.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if getattr(queue_settings.STORE, "in_process", False):
            # Its own copy of the line: it would admit people the site never tells.
            raise CommandError(
                "ticketqueue_ticker cannot tick the in-process MemoryStore: the line lives inside "
                "the web process, which ticks it itself (EMBEDDED_TICKER, on by default with "
                "MemoryStore). Run a separate ticker with RedisStore."
            )
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _signals()}
        try:
            report = tick_loop.run_loop(
                stop,
                ticks=options["ticks"],
                interval=options["interval"],
                batches=options["batches"],
                cleanup_every=options["cleanup_every"],
            )
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(f"{report.ticks} ticks, {report.admitted} admitted.")


def _signals() -> list[signal.Signals]:
    if threading.current_thread() is not threading.main_thread():
        return []
    return [signal.SIGINT, signal.SIGTERM]
