"""Notifications sent off the ticking thread, for tick loops without Celery (the embedded
ticker, ``manage.py ticketqueue_ticker``): a tick finds who to tell (presence is what it is
now), hands them over and goes on, so a slow SMTP server or push service never delays an
admission. A notifier that asks to be retried (webhook, FCM, APNs) is tried again with backoff,
2 s doubling up to 60 s, six times: what the Celery task ``send_notifications`` does.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import close_old_connections

from . import notifications
from .milestones import Milestone

if TYPE_CHECKING:
    from .models import Queue

__all__ = ["Courier", "get_courier"]

log = logging.getLogger("ticketqueue")


class Courier:
    """One daemon thread per process that delivers what ticks hand it, in order of due time."""

    def __init__(
        self,
        *,
        backoff: float = 2.0,
        backoff_max: float = 60.0,
        retries: int = 6,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backoff, self.backoff_max, self.retries = backoff, backoff_max, retries
        self.clock = clock
        self._due: list[tuple[float, int, Any]] = []  # (when, order, job)
        self._order = itertools.count()
        self._busy = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    # -- what ticks call ----------------------------------------------------------------------
    def turn(self, queue: Queue, admissions: Sequence[Any]) -> int:
        """The tick's ``notify``: the admitted people away from the page, told off the tick."""
        return self.send(queue, Milestone.TURN, notifications.absent(queue, admissions))

    def send(self, queue: Queue, milestone: str, targets: Sequence[notifications.Target]) -> int:
        """The tick's ``tell_absent``: deliver later, on the courier's thread."""
        targets = list(targets)
        if targets:
            self._put(self.clock(), (queue, milestone, targets, 0))
        return len(targets)

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is due or being sent (tests; a graceful stop); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._due or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.05))
        return True

    # -- the thread ---------------------------------------------------------------------------
    def _put(self, when: float, job: Any) -> None:
        with self._wake:
            heapq.heappush(self._due, (when, next(self._order), job))
            self._ensure_thread()
            self._wake.notify_all()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        self._pid = os.getpid()  # a forked child starts its own
        self._thread = threading.Thread(target=self._run, name="ticketqueue-courier", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due or self._due[0][0] > self.clock():
                    wait = self._due[0][0] - self.clock() if self._due else None
                    self._wake.wait(wait)
                _when, _n, job = heapq.heappop(self._due)
                self._busy += 1
            try:
                self._deliver(*job)
            finally:
                close_old_connections()
                with self._wake:
                    self._busy -= 1
                    self._wake.notify_all()

    def _deliver(self, queue: Queue, milestone: str, targets: list[Any], attempt: int) -> None:
        try:
            notifications.deliver(queue, targets, retry=True, milestone=milestone)
        except notifications.NotificationFailed:
            if attempt >= self.retries:
                log.error(
                    "notifications given up",
                    extra={"queue": queue.slug, "milestone": milestone, "attempts": attempt + 1},
                )
                return
            delay = min(self.backoff_max, self.backoff * 2**attempt)
            self._put(self.clock() + delay, (queue, milestone, targets, attempt + 1))
        except Exception:
            log.exception("notifications failed", extra={"queue": queue.slug})


_courier: Courier | None = None
_lock = threading.Lock()


def get_courier() -> Courier:
    global _courier
    with _lock:
        if _courier is None:
            _courier = Courier()
        return _courier
