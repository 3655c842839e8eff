"""The hot-state contract: what every store backend does, atomically, for each queue.

A store holds each queue's line (waiting entries in order), its active passes and the outflow
bucket. Every operation is atomic per queue, so any number of processes may call it at once.
Every change to an entry is also written to the queue's journal, which the services copy into
the database rows and then acknowledge: a process that dies in between leaves the change in the
journal for the next tick to finish.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from ..core import EntryState, QueueMode, QueueState, QueueUnavailable, TicketQueueError
from .companions import Broadcast, Claims, Counters, Leases, Presence

__all__ = [
    "ActiveRecord",
    "Admission",
    "Change",
    "Counts",
    "Departures",
    "Joined",
    "LimitHit",
    "LimitResult",
    "Located",
    "Placement",
    "QueueConfig",
    "QueueStore",
    "StoreDump",
    "WaitingRecord",
]


@dataclass(frozen=True)
class QueueConfig:
    """The knobs the store needs to decide joins and admissions atomically."""

    state: QueueState = QueueState.OPEN
    mode: QueueMode = QueueMode.AUTO
    capacity: int | None = None
    rate_per_minute: int | None = None
    max_size: int | None = None
    #: Seconds a pass stays valid after admission.
    purchase_window: float = 900.0
    #: Seconds a waiting entry may go unseen (``touch``) before it is abandoned; admission
    #: abandons such entries at the head instead of admitting them. None: never.
    disconnect_grace: float | None = None
    #: Most passes one identity gets in this queue: one that had them may not join again
    #: (a buyer reloading the page after the order). None: no limit.
    passes_per_identity: int | None = None


@dataclass(frozen=True)
class Placement:
    """Where one live entry stands."""

    seq: int
    identity: str
    state: EntryState  # WAITING or ADMITTED
    #: People ahead plus one while waiting; 0 once admitted.
    position: int
    order: float
    admitted_at: float | None = None
    expires_at: float | None = None
    #: True only for the join that created the entry.
    created: bool = False
    #: The entry's place in the queue's admission order (1 = admitted first), once admitted.
    admission_number: int | None = None


@dataclass(frozen=True)
class Admission:
    seq: int
    identity: str
    admitted_at: float
    expires_at: float
    #: 1 for the queue's first admission, 2 for the next...: the order admissions happened in.
    number: int


@dataclass(frozen=True)
class Change:
    """One journal record: the latest state the store gave an entry."""

    seq: int
    identity: str
    state: EntryState
    order: float
    at: float
    admitted_at: float | None = None
    expires_at: float | None = None
    admission_number: int | None = None
    #: Opaque version the backend uses to acknowledge exactly this record.
    token: str = field(default="", compare=False)


@dataclass(frozen=True)
class Counts:
    """The queue's figures, read in one atomic step at a given ``now``."""

    state: QueueState
    waiting: int
    active: int
    admitted_total: int
    #: The (time, admitted_total) samples the outflow rate at that ``now`` is measured from,
    #: oldest first: ``core.flow_in_window`` of the store's history (at most two samples).
    flow: tuple[tuple[float, int], ...] = ()
    #: Waiting entries that left the line other than by admission so far; the last departure's
    #: number (see ``QueueStore.drain_departures``).
    departed_total: int = 0
    #: Entries that ever joined (each took the next ``seq``): the Prometheus joins counter,
    #: read here rather than counted by one more round trip on every join.
    joined_total: int = 0
    #: Passes that ended (completed, expired, revoked) since the queue was loaded, and the
    #: seconds every pass has been held so far: the ended ones whole, the active ones up to
    #: ``now`` (``core.mean_hold``: how long a slot stays taken).
    passes_ended: int = 0
    hold_exposure: float = 0.0
    #: What the site said it can still sell (``QueueStore.set_stock``), or None: unknown.
    stock: int | None = None
    #: The seconds the ended passes were held (``hold_exposure`` without the active ones).
    ended_hold: float = 0.0


@dataclass(frozen=True)
class Joined:
    """A join's answer: the identity's placement and the queue's counts, read together."""

    placement: Placement
    counts: Counts
    #: The store already told the queue's live channel of this new waiting entry (on
    #: ``broadcast.live_channel``), in the same atomic step: nobody needs to publish it again.
    announced: bool = False


@dataclass(frozen=True)
class Located:
    """A lookup's answer: the identity's placement (None: no live entry) and the queue's
    counts, read together, so the position agrees with the totals."""

    placement: Placement | None
    counts: Counts


@dataclass(frozen=True)
class Departures:
    """Waiting entries that left the line other than by admission (left, abandoned, revoked),
    drained once each. Departures are numbered 1, 2, ... per queue, in the order they happen.
    """

    #: Their orders, in the order they departed: the i-th is departure ``first_number + i``.
    orders: tuple[float, ...]
    #: The queue's departed total when drained: the number of the last of them.
    departed_total: int

    @property
    def first_number(self) -> int:
        return self.departed_total - len(self.orders) + 1


class LimitHit(NamedTuple):
    """One request counted against a named limit: at most ``limit`` hits per ``period``
    seconds (a sliding window, ``core.limit_check``); a plain ``(name, limit, period)``
    tuple does as well."""

    name: str
    limit: int
    period: float


@dataclass(frozen=True)
class LimitResult:
    """One hit's answer: whether its limit had room, else the seconds until it would."""

    allowed: bool
    wait: float = 0.0


@dataclass(frozen=True)
class DeviceBinding:
    """The answer of ``bind_device``: ``previous`` is the device that held the place before
    (None: none, or this one); ``held``: refused, the identity was admitted on ``previous``."""

    previous: str | None = None
    held: bool = False


@dataclass(frozen=True)
class WaitingRecord:
    seq: int
    identity: str
    order: float
    seen_at: float


@dataclass(frozen=True)
class ActiveRecord:
    seq: int
    identity: str
    admitted_at: float
    expires_at: float
    admission_number: int


@dataclass(frozen=True)
class StoreDump:
    """Everything a queue holds, for rebuild checks, tests and admin; costly on long lines."""

    config: QueueConfig
    next_seq: int
    admitted_total: int
    waiting: list[WaitingRecord]
    active: list[ActiveRecord]


#: Most stale entries one ``admit`` call abandons on its way down the line: a long-gone
#: crowd at the head is cleared over several ticks rather than in one long step.
STALE_SKIP_LIMIT = 1_000


def departed_total_after_loss(now: float) -> int:
    """Where a lost queue's departed total starts again: ``now`` in microseconds, higher than
    any total it had (that would take a million departures a second since its last start)."""
    return int(now * 1_000_000)


class QueueStore(abc.ABC):
    """One queue's hot state. ``queue_id`` is the Queue's primary key as a string.

    Operations on a queue the store has not loaded (never configured, or lost with a Redis
    flush) raise QueueUnavailable; the services rebuild it from the rows and try again.

    A backend also sets its five companions (``companions``) in its ``__init__``: shared
    state beside the line, kept where the line is.
    """

    #: True when the store's state lives in this process only: no other process (a separate
    #: ticker, another web worker) sees the line.
    in_process: ClassVar[bool] = False

    presence: Presence
    leases: Leases
    counters: Counters
    claims: Claims
    broadcast: Broadcast

    @property
    def outage_errors(self) -> tuple[type[BaseException], ...]:
        """What this backend's calls raise, besides StoreUnreachable, when it cannot answer:
        the purchase gate treats them as an outage (STORE_FAILURE), not as a refusal."""
        return ()

    # -- set-up -------------------------------------------------------------------------
    @abc.abstractmethod
    def configure(self, queue_id: str, config: QueueConfig, now: float) -> None:
        """Create the queue, or change its knobs and state (effective for the next operation).

        Closing is done by ``close``; a config with state CLOSED only records it.
        """

    @abc.abstractmethod
    def rebuild(
        self,
        queue_id: str,
        config: QueueConfig,
        *,
        waiting: Iterable[WaitingRecord],
        active: Iterable[ActiveRecord],
        next_seq: int,
        admitted_total: int,
        now: float,
        passes_given: Mapping[str, int] | None = None,
    ) -> None:
        """Replace whatever the store holds for the queue with these records.

        ``passes_given`` (identity -> passes it had, from the rows) replaces the store's
        count; None keeps the count of a queue the store still holds.

        The departed total and the departures not yet drained carry over when the store still
        holds the queue, so departure numbers go on. A queue the store lost numbers on from
        ``departed_total_after_loss(now)``: above any number it handed out before, so no live
        seat's "already seen" number hides a new departure.
        """

    @abc.abstractmethod
    def delete(self, queue_id: str) -> None:
        """Forget the queue entirely."""

    def unload(self, queue_id: str) -> None:
        """Forget the queue's line and passes, so its next call finds it not loaded and the
        services load it again from the rows (``services.repair``). What lives beside them
        (presence, limits, leases, marks) may stay; the default forgets everything."""
        self.delete(queue_id)

    @abc.abstractmethod
    def is_loaded(self, queue_id: str) -> bool: ...

    # -- people -------------------------------------------------------------------------
    @abc.abstractmethod
    def join(self, queue_id: str, identity: str, now: float, priority: int = 0) -> Joined:
        """Give ``identity`` its one place: a new entry at the back of its ``priority``'s band
        (``core.priority_order``: a group's band stands ahead of the public's), or its existing
        one; with the queue's counts at ``now`` read in the same atomic step.

        A new entry is admitted at once when the queue is open and either the mode is OFF, or
        the mode is AUTO, nobody waits and the outflow allows one more. Raises QueueClosed,
        QueueFull (``max_size`` entries waiting) or PassLimitReached (the identity had
        ``passes_per_identity`` passes already) and changes nothing then.
        """

    def join_within_limits(
        self,
        queue_id: str,
        identity: str,
        now: float,
        hits: Sequence[LimitHit | tuple[str, int, float]],
        limits_now: float,
    ) -> Joined | list[LimitResult]:
        """``hit_limits`` (at ``limits_now``) and then, if every limit had room, ``join`` in
        the public line: a REST join's two steps in one round trip where the store can.

        Returns the limits' results when one had no room (nothing counted or joined then),
        else what ``join`` returns; raises what ``join`` raises. A queue that is not loaded
        raises QueueUnavailable before anything is counted, so the call may be made again
        once the queue is loaded.
        """
        if not self.is_loaded(queue_id):
            raise QueueUnavailable(f"Queue {queue_id} is not loaded in the store.")
        results = self.hit_limits(queue_id, hits, limits_now)
        if not all(result.allowed for result in results):
            return results
        return self.join(queue_id, identity, now)

    def join_many(
        self, queue_id: str, identities: Sequence[str], now: float
    ) -> list[Joined | TicketQueueError]:
        """``join`` for each identity in the public line, in order (each its own atomic step),
        in one round trip where the store can: a socket process's joins of one moment.

        A join the store refuses (QueueClosed, QueueFull, PassLimitReached, or QueueUnavailable
        after others went through) is that identity's result. QueueUnavailable is raised only
        when no join went through: then nothing changed, and the batch may be sent again once
        the queue is loaded.
        """
        results: list[Joined | TicketQueueError] = []
        for identity in identities:
            try:
                results.append(self.join(queue_id, identity, now))
            except TicketQueueError as exc:
                results.append(exc)
        return _unless_unavailable(queue_id, results)

    @abc.abstractmethod
    def locate(self, queue_id: str, identity: str, now: float) -> Located:
        """The identity's live entry (or None) and the queue's counts at ``now``, in one
        atomic step."""

    def locate_many(self, queue_id: str, identities: Sequence[str], now: float) -> list[Located]:
        """``locate`` for each identity, in order (each an atomic step, or several together):
        a socket process's resync reads hundreds at once, and a store may answer them in one
        round trip."""
        return [self.locate(queue_id, identity, now) for identity in identities]

    @abc.abstractmethod
    def touch(self, queue_id: str, identity: str, now: float) -> bool:
        """Mark the identity's waiting entry as seen now; False if it has no live entry (an
        admitted one is live: its heartbeat may cross its own admission)."""

    def touch_many(self, queue_id: str, identities: Sequence[str], now: float) -> list[bool]:
        """``touch`` for each identity, in order: a socket process's heartbeats, batched."""
        return [self.touch(queue_id, identity, now) for identity in identities]

    @abc.abstractmethod
    def bind_device(self, queue_id: str, identity: str, device: str, now: float) -> DeviceBinding:
        """Make ``device`` the one that holds ``identity``'s place (queues with one device per
        person), in one atomic step: while the identity waits, or has no entry, the newest
        device takes it over (``previous`` says from whom); once admitted, the device that held
        the place then keeps it and another is refused (``held``). An admitted identity with no
        device yet (the store lost it) binds to this one. Kept beside the queue, forgotten with
        it; raises QueueUnavailable like the entry operations."""

    @abc.abstractmethod
    def devices(self, queue_id: str, identities: Sequence[str]) -> dict[str, str]:
        """The devices bound to these identities (those that have one): what their passes are
        bound to."""

    @abc.abstractmethod
    def leave(self, queue_id: str, identity: str, now: float) -> Change | None:
        """Take the identity's waiting entry out of line (LEFT); None if it is not waiting."""

    @abc.abstractmethod
    def abandon(self, queue_id: str, seen_before: float, now: float) -> list[Change]:
        """Move waiting entries not seen since ``seen_before`` to ABANDONED."""

    # -- outflow ------------------------------------------------------------------------
    @abc.abstractmethod
    def admit(
        self, queue_id: str, now: float, *, limit: int | None = None, use_rate: bool = True
    ) -> list[Admission]:
        """Admit from the head of the line, as many as the outflow policy allows.

        Never past capacity; only while the queue is OPEN. ``use_rate=False`` (an operator's
        "admit N now") ignores the rate bucket but never capacity. A waiting entry unseen for
        longer than the queue's ``disconnect_grace`` is never admitted: the same atomic step
        abandons it (journalled, a departure) and admits the next one instead, skipping at most
        ``STALE_SKIP_LIMIT`` per call (the next call goes on).
        """

    @abc.abstractmethod
    def expire(self, queue_id: str, now: float) -> list[Change]:
        """End every pass whose expiry is at or before ``now`` (EXPIRED)."""

    @abc.abstractmethod
    def release(self, queue_id: str, seq: int, now: float) -> Change | None:
        """End an active pass because its order completed (COMPLETED); None if not active."""

    @abc.abstractmethod
    def revoke(self, queue_id: str, seqs: Sequence[int], now: float) -> list[Change]:
        """End these live entries, waiting or admitted (REVOKED); unknown seqs are skipped."""

    @abc.abstractmethod
    def close(self, queue_id: str, now: float) -> int:
        """Close the queue: no more joins, every waiting entry REVOKED. Returns how many.

        Active passes stay valid until they expire or are released. The revoked waiting
        entries are not journalled one by one (there may be a million); the services update
        their rows in one statement.
        """

    @abc.abstractmethod
    def set_stock(self, queue_id: str, remaining: int | None) -> None:
        """Remember what the site can still sell (None: unknown), read back in the counts:
        people behind more buyers than that are told the tickets will likely run out first.
        Kept while the store holds the queue; the site says it again after a rebuild."""

    @abc.abstractmethod
    def shuffle_prequeue(self, queue_id: str, seed: int) -> dict[int, float]:
        """Deal the waiting entries new orders with ``core.shuffle_order``; returns them."""

    @abc.abstractmethod
    def end_idle(self, queue_id: str, seqs: Sequence[int], now: float) -> list[Change]:
        """End these active passes as ABANDONED: their holders have been away longer than the
        queue's pass idle grace, so the slot goes to someone who is there. Seqs that are not
        active passes are skipped."""

    # -- reading ------------------------------------------------------------------------
    @abc.abstractmethod
    def position(self, queue_id: str, seq: int) -> int | None:
        """People ahead plus one, exact; None if ``seq`` is not waiting."""

    @abc.abstractmethod
    def pass_active(self, queue_id: str, seq: int, now: float) -> bool:
        """Whether the pass of entry ``seq`` is active (admitted, not yet ended, not expired)."""

    @abc.abstractmethod
    def head(
        self, queue_id: str, count: int, after: float | None = None, limit: int = 10_000
    ) -> list[WaitingRecord]:
        """The first ``count`` places of the line, in line order; with ``after``, only those
        among them whose order is above it (the ones a milestone has not reached yet); at
        most ``limit``. O(log n + what is returned)."""

    @abc.abstractmethod
    def passes(
        self,
        queue_id: str,
        expires_after: float = -math.inf,
        expires_by: float = math.inf,
        limit: int = 10_000,
    ) -> list[ActiveRecord]:
        """Active passes expiring after ``expires_after`` and by ``expires_by``, soonest
        first, at most ``limit``."""

    @abc.abstractmethod
    def counts(self, queue_id: str, now: float) -> Counts:
        """The queue's counts, with the outflow samples the rate at ``now`` needs."""

    @abc.abstractmethod
    def dump(self, queue_id: str) -> StoreDump: ...

    # -- journal and departures -------------------------------------------------------
    @abc.abstractmethod
    def journal(self, queue_id: str, limit: int = 10_000) -> list[Change]:
        """Changes not yet acknowledged, oldest first."""

    @abc.abstractmethod
    def ack(self, queue_id: str, changes: Iterable[Change]) -> None:
        """Drop these records from the journal, unless a newer change replaced them."""

    @abc.abstractmethod
    def drain_departures(self, queue_id: str) -> Departures:
        """The waiting entries that left the line other than by admission since the last call
        (left, abandoned, revoked), for the live broadcast; each is returned once.

        Each departure takes the next number of the queue's departed total in the same atomic
        step as the departure itself, so a reader comparing ``Counts.departed_total`` with these
        numbers knows which departures a position it read already reflects. Closing the queue
        is not a departure (the line ends for everyone).
        """

    def hit_limits_many(
        self,
        queue_id: str,
        requests: Sequence[Sequence[LimitHit | tuple[str, int, float]]],
        now: float,
    ) -> list[list[LimitResult]]:
        """``hit_limits`` for each request, in order (each an atomic step, or several
        together; a later request sees what an earlier one counted): a socket process's
        connects of the last moment."""
        return [self.hit_limits(queue_id, hits, now) for hits in requests]

    # -- request limits (the REST throttles) -------------------------------------------
    @abc.abstractmethod
    def hit_limits(
        self, queue_id: str, hits: Sequence[LimitHit | tuple[str, int, float]], now: float
    ) -> list[LimitResult]:
        """Count one request against each of these limits (distinct names), all or nothing, in
        one atomic step: if any refuses, none is counted, so a client over one limit does not
        also use up the others. One result per hit, in order; ``allowed`` is whether that
        limit had room (counted only if all did).

        Counters live beside the queue (its hash slot in Redis) and need not be loaded: this
        never raises QueueUnavailable. They are forgotten on their own two periods after
        their last counted hit, and with the queue by ``delete``.
        """

    @abc.abstractmethod
    def claim_use(self, queue_id: str, name: str, uses: int, ttl: float, now: float) -> bool:
        """Count one use of ``name`` (a single- or N-use token): True while it has been used
        at most ``uses`` times, False after. Counted from the first use for ``ttl`` seconds.
        Beside the queue like the limits: never raises QueueUnavailable, forgotten after
        ``ttl`` and with the queue by ``delete``."""

    # -- milestones ---------------------------------------------------------------------
    @abc.abstractmethod
    def marks(self, queue_id: str) -> dict[str, float]:
        """The queue's high-water marks by name (milestones: who was told so far)."""

    @abc.abstractmethod
    def advance_mark(self, queue_id: str, name: str, value: float) -> float | None:
        """Raise the mark ``name`` to ``value``, never lowering it, in one atomic step; return
        what it was (None: unset). Kept beside the queue (a rebuild keeps it; a flush loses it),
        dropped with ``delete``."""

    # -- locking (rebuild, tick loop) --------------------------------------------------
    @abc.abstractmethod
    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew a named lock for ``ttl`` seconds; False if another owner holds it."""

    @abc.abstractmethod
    def release_lock(self, name: str, owner: str) -> None: ...

    # -- lifetime ----------------------------------------------------------------------
    def disconnect(self) -> None:
        """Close this instance's connections (it is being replaced); using it again reconnects."""
        return None  # an in-process store holds none


def _unless_unavailable(
    queue_id: str, results: list[Joined | TicketQueueError]
) -> list[Joined | TicketQueueError]:
    """``join_many``'s results, or QueueUnavailable raised when none of them went through."""
    if results and all(isinstance(r, QueueUnavailable) for r in results):
        raise QueueUnavailable(f"Queue {queue_id} is not loaded in the store.")
    return results
