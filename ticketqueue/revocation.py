"""Whether a pass is still active, answered on the purchase hot path without a store call.

Each process keeps the passes that ended (released, revoked) in a local set fed by the store's
broadcast (``store.broadcast``: Redis pub/sub with RedisStore), and the passes the store
confirmed active since it last (re)subscribed; see docs/design.md "Passes and the gate" for why
that is exact enough to sit on every request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from . import passes, signals
from .conf import on_change, queue_settings
from .core import PassClaims, PassNotActive, QueueUnavailable, StoreUnreachable, pass_jti
from .store import QueueStore, get_store
from .store.companions import Listener

__all__ = [
    "DirectTracker",
    "PubSubTracker",
    "check_active",
    "connect_signals",
    "get_tracker",
    "reset_tracker",
]

log = logging.getLogger("ticketqueue.gate")


def _store_says_active(store: QueueStore, claims: PassClaims, now: float) -> bool:
    """One store round trip; a queue the store does not hold is an outage, not an ended pass."""
    if store.pass_active(claims.queue_id, claims.seq, now):
        return True
    if not store.is_loaded(claims.queue_id):  # only on this rare path: a second round trip
        raise QueueUnavailable()
    return False


class DirectTracker:
    """Asks the store on every request: exact, and cheap when the store lives in the process
    (MemoryStore, the embedded default)."""

    live = True

    def __init__(self, store: QueueStore) -> None:
        self.store = store
        #: What the store raises when it cannot answer.
        self.outage = _outage(store)

    def is_active(self, claims: PassClaims, now: float) -> bool:
        return _store_says_active(self.store, claims, now)

    def mark_ended(self, ended: Iterable[tuple[str, int]], publish: bool = True) -> None:
        """Nothing to remember: the store is the one truth in this process."""

    def stop(self) -> None:
        pass


class PubSubTracker:
    """Ended passes known locally, kept current by a listener thread on the store's broadcast.

    - A pass in ``ended`` is refused at once.
    - A pass the store confirmed active while the subscription was live, less than
      ``recheck`` seconds ago, is accepted with no round trip: had it ended since, the end
      would have been published after the confirmation and is in ``ended`` by now (up to the
      pub/sub delivery delay).
    - A pass *issued* (admitted: its ``iat``) while the subscription was live, at least
      ``skew`` seconds after it went live and less than ``recheck`` seconds ago, is accepted
      with no round trip too: its admission is the store's own confirmation, and every end
      comes after it (so a buyer's first purchase in a worker costs no store call).
    - Anything else costs one store round trip (at most one per pass per process per
      ``recheck`` seconds); while the subscription is down, every request does (the
      fail-closed path).
    Every (re)subscription starts a new generation and forgets the confirmations: a message
    published while this process was not listening is lost, so those passes are asked again.
    """

    #: Seconds between two sweeps of passes past their expiry out of the local sets.
    SWEEP_EVERY = 10.0

    def __init__(
        self,
        store: QueueStore,
        *,
        recheck: float,
        skew: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.outage = _outage(store)
        self.channel = store.broadcast.ended_passes_channel()
        self.recheck = recheck
        #: Seconds the clocks of the hosts that admit and the one that checks may disagree.
        self.skew = skew
        self.clock = clock
        #: Measures GATE_RECHECK; tests swap it.
        self.monotonic: Callable[[], float] = time.monotonic
        #: jti -> exp of passes heard ended (released, revoked, expired)
        self.ended: dict[str, int] = {}
        #: jti -> (confirmed at, monotonic; exp) of passes the store said were active
        self.confirmed: dict[str, tuple[float, int]] = {}
        self.live = False
        self.generation = 0
        #: When (wall clock) the current subscription went live; passes admitted after it
        #: (less the clock skew) have every end of theirs published to this subscription.
        self.listening_since = float("inf")
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._lock = threading.Lock()
        #: Set each time the subscription is confirmed; tests wait on it.
        self.subscribed = threading.Event()
        self._needs_start = True
        if hasattr(os, "register_at_fork"):
            # A forked child (gunicorn --preload) inherits the maps but not the thread.
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._needs_start = True

    # -- the hot path ---------------------------------------------------------------------
    def is_active(self, claims: PassClaims, now: float) -> bool:
        jti = claims.jti
        if jti in self.ended:
            return False
        if self._needs_start:  # first use, or a forked child
            self.start()
        if not self.live:
            return self._ask_store(claims, now, cache=False)
        seen = self.confirmed.get(jti)
        if seen is not None and self.monotonic() - seen[0] < self.recheck:
            return True
        issued = claims.issued_at
        if issued >= self.listening_since + self.skew and now - issued < self.recheck:
            return True
        return self._ask_store(claims, now, cache=True)

    def _ask_store(self, claims: PassClaims, now: float, *, cache: bool) -> bool:
        generation = self.generation
        asked_at = self.monotonic()
        active = _store_says_active(self.store, claims, now)
        jti = claims.jti
        if not active:
            # An admission is never repeated: a pass that ended stays ended.
            self.ended[jti] = claims.expires_at
        elif cache:
            with self._lock:  # against a resubscription between the answer and the write
                if self.live and self.generation == generation and jti not in self.ended:
                    # Confirmed while subscribed: any later end is published after this answer.
                    self.confirmed[jti] = (asked_at, claims.expires_at)
        return active and jti not in self.ended

    # -- what the services tell us --------------------------------------------------------
    def mark_ended(self, ended: Iterable[tuple[str, int]], publish: bool = True) -> None:
        """Remember these (jti, exp) as ended here at once, then tell the other processes."""
        ended = list(ended)
        if not ended:
            return
        for jti, exp in ended:
            self.ended[jti] = exp
            self.confirmed.pop(jti, None)
        if publish:
            message = " ".join(f"{jti}:{exp}" for jti, exp in ended).encode()
            for attempt in (1, 2):
                try:
                    self.store.broadcast.publish(self.channel, message)
                    return
                except self.outage:
                    if attempt == 2:
                        # The other processes re-ask the store within GATE_RECHECK seconds.
                        log.exception("could not publish ended passes", extra={"count": len(ended)})

    def _apply(self, data: Any) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        for item in text.split():
            jti, _, exp = item.rpartition(":")
            try:
                self.ended[jti] = int(exp)
            except ValueError:
                log.warning("ignored a malformed ended-pass message", extra={"item": item[:80]})
                continue
            self.confirmed.pop(jti, None)

    def sweep(self, now: float | None = None) -> None:
        """Drop passes past their expiry: ``exp`` alone refuses them from now on."""
        now = self.clock() if now is None else now
        for jti, exp in list(self.ended.items()):
            if exp < now:
                self.ended.pop(jti, None)
        for jti, (_, exp) in list(self.confirmed.items()):
            if exp < now:
                self.confirmed.pop(jti, None)

    # -- the subscriber thread ------------------------------------------------------------
    def start(self) -> None:
        """Start (or, in a forked child, restart) this process's subscriber thread."""
        with self._start_lock:
            pid = os.getpid()
            self._needs_start = False
            if self._pid == pid and self._thread is not None:
                return
            # A forked child inherits the dicts but not the thread: start over.
            self.live = False
            self.listening_since = float("inf")
            self.confirmed.clear()
            self._stop.clear()
            self.subscribed.clear()
            self._pid = pid
            self._thread = threading.Thread(
                target=self._run, name="ticketqueue-pass-subscriber", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)
        self._thread = None
        self._pid = None
        self.live = False
        self.listening_since = float("inf")
        self._needs_start = True

    def _go_live(self) -> None:
        with self._lock:
            self.generation += 1
            self.confirmed.clear()
            self.listening_since = self.clock()
            self.live = True
        self.subscribed.set()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            listener: Listener | None = None
            try:
                listener = self.store.broadcast.listen(self.channel)
                next_sweep = time.monotonic() + self.SWEEP_EVERY
                while not self._stop.is_set():
                    heard = listener.get(timeout=1.0)
                    if heard is not None:
                        kind, data = heard
                        if kind == "subscribed":  # what was published before is not heard
                            self._go_live()
                            backoff = 0.1
                        else:
                            self._apply(data)
                    if time.monotonic() >= next_sweep:
                        self.sweep()
                        next_sweep = time.monotonic() + self.SWEEP_EVERY
            except Exception:
                if not self._stop.is_set():
                    log.warning("pass subscriber disconnected; asking the store per request")
            finally:
                self.live = False
                self.listening_since = float("inf")
                self.subscribed.clear()
                if listener is not None:
                    listener.close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)


_tracker: DirectTracker | PubSubTracker | None = None
_tracker_lock = threading.Lock()


def _outage(store: QueueStore) -> tuple[type[BaseException], ...]:
    """Errors that mean the store cannot answer (QueueUnavailable: it lost the queue)."""
    return (OSError, QueueUnavailable, *store.outage_errors)


def get_tracker() -> DirectTracker | PubSubTracker:
    global _tracker
    tracker = _tracker
    if tracker is None:
        with _tracker_lock:
            if _tracker is None:
                store = get_store()
                if store.in_process:  # every pass ends in this process: nobody to hear
                    _tracker = DirectTracker(store)
                else:
                    _tracker = PubSubTracker(
                        store,
                        recheck=float(queue_settings.GATE_RECHECK),
                        skew=float(queue_settings.PASS_LEEWAY),
                        clock=lambda: passes.timer(),
                    )
            tracker = _tracker
    return tracker


def reset_tracker() -> None:
    """Stop and forget the tracker (settings changed, or a test wants a fresh one)."""
    global _tracker
    with _tracker_lock:
        tracker, _tracker = _tracker, None
    if tracker is not None:
        tracker.stop()


on_change("TICKETQUEUE")(reset_tracker)


def check_active(claims: PassClaims, now: float) -> None:
    """Raise PassNotActive for an ended pass; QueueUnavailable when the store cannot say and
    STORE_FAILURE is 'closed' (with 'open', a pass whose signature and claims hold goes in)."""
    tracker = get_tracker()
    try:
        active = tracker.is_active(claims, now)
    except tracker.outage as exc:
        if queue_settings.STORE_FAILURE == "open":
            log.warning("store unreachable; pass accepted on its signature (STORE_FAILURE=open)")
            return
        raise (exc if isinstance(exc, QueueUnavailable) else StoreUnreachable()) from exc
    if not active:
        raise PassNotActive()


# -- the services' signals -> the local set and the channel ---------------------------------


def _ended(queue: Any, changes: Iterable[Any]) -> list[tuple[str, int]]:
    return [
        (pass_jti(queue.store_id, c.seq), int(c.expires_at))
        for c in changes
        if c.admitted_at is not None and c.expires_at is not None  # only passes, not places
    ]


def _on_released(sender: Any, queue: Any, change: Any, **kwargs: Any) -> None:
    get_tracker().mark_ended(_ended(queue, [change]))


def _on_revoked(sender: Any, queue: Any, changes: Any, **kwargs: Any) -> None:
    get_tracker().mark_ended(_ended(queue, changes))


def _on_expired(sender: Any, queue: Any, changes: Any, **kwargs: Any) -> None:
    # Every process refuses an expired pass from its own ``exp``: nothing to publish.
    if _tracker is not None:
        _tracker.mark_ended(_ended(queue, changes), publish=False)


def connect_signals() -> None:
    """Hear the services' pass_released / entries_revoked / passes_expired (apps.ready)."""
    signals.pass_released.connect(_on_released, dispatch_uid="ticketqueue.revocation.released")
    signals.entries_revoked.connect(_on_revoked, dispatch_uid="ticketqueue.revocation.revoked")
    signals.passes_expired.connect(_on_expired, dispatch_uid="ticketqueue.revocation.expired")
