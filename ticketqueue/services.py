"""The waiting room's operations, and the only place that combines the store, the rows,
passes and notifications. Adapters (consumers, API, tasks, admin, commands) call these.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, Max
from django.utils.module_loading import import_string

from . import invites, limits, passes, presence, proofs, rows, signals
from .conf import min_disconnect_grace, queue_settings
from .core import (
    DeviceInUse,
    DeviceRequired,
    EntryNotFound,
    EntryState,
    InvalidTransition,
    LoginRequired,
    PassClaims,
    PassNotActive,
    PassWrongIdentity,
    QueueMode,
    QueueNotFound,
    QueueState,
    QueueUnavailable,
    StoreUnreachable,
    Throttled,
    check_queue_transition,
    estimate_eta,
    line_rate,
    mean_hold,
    measured_rate,
)
from .models import Admission as AdmissionRow
from .models import Entry, PriorityGroup, Queue
from .rows import as_datetime as _dt
from .store import (
    ActiveRecord,
    Admission,
    Change,
    Counts,
    Joined,
    LimitHit,
    Placement,
    QueueConfig,
    QueueStore,
    WaitingRecord,
    get_store,
)

__all__ = [
    "Status",
    "TickResult",
    "asks_only_identity",
    "behind_rows",
    "clock",
    "close",
    "configure",
    "connected",
    "disconnect",
    "disconnect_grace",
    "end_idle_passes",
    "get_queue",
    "heartbeat",
    "heartbeats",
    "join",
    "join_many",
    "leave",
    "open_connections",
    "open_queue",
    "pause",
    "rebuild",
    "refill",
    "release",
    "release_entry",
    "release_pass",
    "repair",
    "resume",
    "revoke",
    "set_stock",
    "settle_closed",
    "sold_out_likely",
    "status",
    "statuses",
    "sync_journal",
    "tick",
]

log = logging.getLogger("ticketqueue")

#: The clock every operation reads when not given ``now``; tests swap it.
clock: Callable[[], float] = time.time

T = TypeVar("T")


def _now(now: float | None) -> float:
    return clock() if now is None else now


@dataclass(frozen=True)
class Status:
    """What one identity sees: its place (or pass) and the line around it."""

    queue: str
    queue_state: str
    state: str | None  # "waiting", "admitted", or None when the identity has no live entry
    seq: int | None
    position: int | None
    waiting: int
    active: int
    eta_seconds: int | None
    order: float | None = None
    pass_token: str | None = None
    pass_expires_at: float | None = None
    #: The queue's admission and departure totals, read in the same atomic step as the
    #: position: live updates move a place only by the admissions and departures past them.
    admitted_total: int | None = None
    departed_total: int | None = None
    #: The site's remaining stock (``set_stock``) is less than the buyers served before this
    #: one (the pass holders and the people ahead): the tickets will likely run out first.
    sold_out_likely: bool = False
    #: That stock (None: unknown), for the live layer; the API does not show it.
    stock: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TickResult:
    queue_id: str
    slug: str
    expired: list[Change] = field(default_factory=list)
    admitted: list[Admission] = field(default_factory=list)
    #: (admission, signed pass) for each admitted entry, for 'granted' messages
    passes: list[tuple[Admission, str]] = field(default_factory=list)
    #: Orders of waiting entries that left the line since the last tick, in the order they
    #: left; the last one is departure number ``departed_total``.
    departed: list[float] = field(default_factory=list)
    departed_total: int | None = None
    counts: Counts | None = None
    eta_rate: float | None = None


# -- queues and the store ----------------------------------------------------------------


def get_queue(slug: str) -> Queue:
    try:
        return Queue.objects.get(slug=slug)
    except Queue.DoesNotExist:
        raise QueueNotFound() from None


def _config(queue: Queue) -> QueueConfig:
    return QueueConfig(
        state=QueueState(queue.state),
        mode=QueueMode(queue.mode),
        capacity=queue.capacity,
        rate_per_minute=queue.rate_per_minute,
        max_size=queue.max_size,
        purchase_window=float(queue.purchase_window),
        disconnect_grace=disconnect_grace(queue),
        passes_per_identity=queue.passes_per_identity,
    )


def disconnect_grace(queue: Queue) -> float:
    """The queue's grace, never below the floor: a row saved before the floor existed (or
    written past validation) must not abandon people whose sockets are open."""
    return max(float(queue.disconnect_grace), min_disconnect_grace())


def _call(queue: Queue, op: Callable[[QueueStore], T], now: float | None = None) -> T:
    """Run one store operation at ``now``; a queue the store lost is rebuilt from the rows
    (its waiting entries seen at ``now``), then retried."""
    store = get_store()
    try:
        return op(store)
    except StoreUnreachable:
        raise
    except QueueUnavailable:
        if store.is_loaded(queue.store_id):
            raise
        rebuild(queue, now)
        return op(store)


def configure(queue: Queue, now: float | None = None) -> None:
    """Push the queue's knobs to the store (after an edit); effective for the next tick. The
    stock is read from the row, not ``queue``: orders elsewhere may have taken some since."""
    store = get_store()
    store.configure(queue.store_id, _config(queue), _now(now))
    store.set_stock(queue.store_id, _recorded_stock(queue))


def _recorded_stock(queue: Queue) -> int | None:
    return Queue.objects.filter(pk=queue.pk).values_list("stock", flat=True).first()


def ensure_loaded(queue: Queue, now: float | None = None) -> None:
    if not get_store().is_loaded(queue.store_id):
        rebuild(queue, now)


def behind_rows(queue: Queue, now: float | None = None) -> bool:
    """Whether the store has forgotten entries or admissions the rows hold: it handed out
    every seq and admission number the rows have, so a lower count means it went back in time
    (a Redis failover promoted a replica that had not yet received the last writes). The rows
    are read first: a join or admission they hold had its number from the store before."""
    top_seq = Entry.objects.filter(queue=queue).aggregate(m=Max("seq"))["m"] or 0
    top = AdmissionRow.objects.filter(queue=queue).aggregate(m=Max("number"))["m"] or 0
    counts = _call(queue, lambda s: s.counts(queue.store_id, _now(now)), now)
    return counts.joined_total < top_seq or counts.admitted_total < top


def repair(queue: Queue, now: float | None = None) -> int:
    """Load the queue again from the rows, for a store that lost some of it (``behind_rows``):
    what the store did since is written to the rows first, then the store forgets the queue,
    so every call meanwhile is refused (and retried) rather than lost, and it is rebuilt."""
    log.warning("store behind the rows; loading the queue again", extra={"queue": queue.slug})
    sync_journal(queue)
    get_store().unload(queue.store_id)
    return rebuild(queue, now)


def _lost_by_store(queue: Queue, placement: Placement) -> bool:
    """A new entry's row clashed with one already there. After the store's changes are in the
    rows: True when that row is one the store forgot (it gave out the row's seq again, or holds
    no place for an identity the rows still have in line)."""
    sync_journal(queue)
    clash = Entry.objects.filter(queue=queue, seq=placement.seq).exclude(
        identity=placement.identity
    )
    if clash.exists():
        return True
    in_line = Entry.objects.filter(queue=queue, identity=placement.identity).live()
    return in_line.exclude(seq=placement.seq).exists()


# -- people ------------------------------------------------------------------------------


def join(
    queue: Queue,
    identity: str,
    now: float | None = None,
    *,
    proof: proofs.JoinProof | None = None,
    address: str = "",
    device: str | None = None,
    hits: Sequence[tuple[str, str | None]] = (),
) -> Status:
    """Give ``identity`` its one place in the line (or a pass at once); idempotent.

    ``hits``: the request limits this join counts against (``limits``: ``(scope, who)``),
    Throttled when one has no room. Where the place needs nothing but the identity they are
    counted in the store's join step itself (one round trip); otherwise before anything else.

    A new entry's row is committed before this returns: an acknowledged join is never lost.
    Raises LoginRequired for a visitor when the queue takes logged-in users only,
    InviteRequired/InviteInvalid when it takes holders of an invite (``proof.invite``; an invite
    to a priority group puts the place in that group's part of the line, in any queue), and the
    ProofRequired family when the queue asks a new place for proof (``proofs``) and ``proof``
    (from ``address``, for the CAPTCHA provider) does not hold. With one device per person the
    place moves to ``device`` (a digest, ``identity.device_of``) first: DeviceRequired without
    one, DeviceInUse when the identity was admitted on another.
    """
    if queue.who_may_join == Queue.WhoMayJoin.USERS and not identity.startswith("user:"):
        raise LoginRequired()
    now = _now(now)
    token = proof.invite if proof else ""
    counted = limits.limit_hits(hits)
    if counted and (token or not asks_only_identity(queue)):
        # Before a device moves, an invite is spent or a proof is checked.
        limits.check(queue.store_id, hits)
        counted = []
    if queue.device_policy == Queue.DevicePolicy.ONE:
        if device is None:
            raise DeviceRequired()
        bind_device(queue, identity, device, now)
    invited = queue.who_may_join == Queue.WhoMayJoin.INVITED
    priority = 0
    if invited or token or proofs.demanded(queue):
        # Someone already in line keeps their place: nothing is asked or spent again.
        current = status(queue, identity, now)
        if current.state is not None:
            return current
        invite = invites.check(queue, token, now) if invited or token else None
        if invite is not None and not invited and not invite.group_id:
            invite = None  # an invite to no group means nothing in a queue open to anyone
        if proofs.demanded(queue):
            proofs.check(queue, identity, proof, address, now)
        if invite is not None:
            # A group since deleted: the invite still lets its holder in, in the public line.
            priority = _group_priority(queue, pk=invite.group_id) if invite.group_id else 0
            invites.spend(queue, invite, now)
    if not priority and queue_settings.PRIORITY_RESOLVER:
        name = import_string(str(queue_settings.PRIORITY_RESOLVER))(queue, identity)
        priority = _group_priority(queue, name=name) if name else 0
    joined = _place(queue, identity, now, priority, counted)
    _announce(queue, joined, now)
    return _status(queue, joined.placement, joined.counts, now)


def asks_only_identity(queue: Queue) -> bool:
    """Whether a new place in ``queue`` needs nothing but the identity: no invite, proof,
    device or priority group to check. Such joins may go through ``join_many``."""
    return (
        queue.who_may_join != Queue.WhoMayJoin.INVITED
        and queue.device_policy != Queue.DevicePolicy.ONE
        and not proofs.demanded(queue)
        and not queue_settings.PRIORITY_RESOLVER
    )


def join_many(
    queue: Queue, identities: Sequence[str], now: float | None = None
) -> list[Status | Exception]:
    """``join`` for the identities joining at one moment (a socket process's batch), in a
    queue whose places need nothing but the identity (``asks_only_identity``): the places in
    one store round trip and the new rows in one INSERT, each committed before it is answered,
    as ``join`` does. An identity twice gets its one place twice.

    Each result, in order, is that join's Status or the error it raised.
    """
    now = _now(now)
    results: list[Status | Exception | None] = [None] * len(identities)
    asking = []
    for i, identity in enumerate(identities):
        if queue.who_may_join == Queue.WhoMayJoin.USERS and not identity.startswith("user:"):
            results[i] = LoginRequired()
        else:
            asking.append(i)
    store_id = queue.store_id
    names = [identities[i] for i in asking]
    answers = _call(queue, lambda s: s.join_many(store_id, names, now), now) if names else []
    new: list[tuple[int, Joined]] = []
    for i, answer in zip(asking, answers, strict=True):
        if isinstance(answer, Exception):
            results[i] = answer
        elif answer.placement.created:
            new.append((i, answer))
        else:
            results[i] = _status(queue, answer.placement, answer.counts, now)
    failed = rows.create_entries(queue, [joined.placement for _, joined in new], now)
    if failed:
        # Not acknowledged, so not kept: take those places back out of the store.
        get_store().revoke(store_id, [new[k][1].placement.seq for k in failed], now)
    repaired = False
    for k, (i, joined) in enumerate(new):
        error = failed.get(k)
        if error is None:
            _announce(queue, joined, now)
            results[i] = _status(queue, joined.placement, joined.counts, now)
        elif isinstance(error, IntegrityError) and (
            repaired or _lost_by_store(queue, joined.placement)
        ):
            # As in ``_place``: the store forgot places the rows hold; load it again once and
            # give this identity its place the one-at-a-time way.
            if not repaired:
                repair(queue, now)
                repaired = True
            try:
                results[i] = join(queue, identities[i], now)
            except Exception as exc:  # noqa: BLE001 - this join's alone
                results[i] = exc
        else:
            results[i] = error
    answered = [result for result in results if result is not None]
    assert len(answered) == len(identities), "every join has its answer"
    return answered


def _announce(queue: Queue, joined: Joined, now: float) -> None:
    """Log a new place and send its signals (an admission at once is one too)."""
    placement = joined.placement
    if not placement.created:
        return
    log.info(
        "entry joined",
        extra={"queue": queue.slug, "seq": placement.seq, "state": placement.state.value},
    )
    signals.entry_joined.send(
        sender=Queue,
        queue=queue,
        placement=placement,
        counts=joined.counts,
        announced=joined.announced,
    )
    if placement.state is EntryState.ADMITTED:
        admission = Admission(
            placement.seq,
            placement.identity,
            placement.admitted_at or now,
            placement.expires_at or now,
            placement.admission_number or 0,
        )
        signals.entries_admitted.send(sender=Queue, queue=queue, admissions=[admission])


def _place(
    queue: Queue,
    identity: str,
    now: float,
    priority: int,
    counted: Sequence[LimitHit] = (),
    again: bool = True,
) -> Joined:
    """The store's join (within the ``counted`` limits: Throttled when one has no room), and a
    new entry's row committed (or the place taken back out)."""
    if counted:
        within = _call(
            queue,
            lambda s: s.join_within_limits(queue.store_id, identity, now, counted, limits.timer()),
            now,
        )
        if not isinstance(within, Joined):
            raise Throttled(wait=limits.wait_of(within) or 1)
        joined = within
    else:
        joined = _call(queue, lambda s: s.join(queue.store_id, identity, now, priority), now)
    placement = joined.placement
    if not placement.created:
        return joined
    try:
        rows.create_entry(queue, placement, now)
    except Exception as exc:
        # Not acknowledged, so not kept: take the place back out of the store.
        get_store().revoke(queue.store_id, [placement.seq], now)
        if (
            again
            and isinstance(exc, IntegrityError)
            and not connection.in_atomic_block
            and _lost_by_store(queue, placement)
        ):
            # The store forgot this identity's place, or the place whose seq it gave out: load
            # the line again from the rows, where the earlier join still stands.
            repair(queue, now)  # the limits were counted already
            return _place(queue, identity, now, priority, again=False)
        raise
    return joined


def _group_priority(queue: Queue, **lookup: Any) -> int:
    """The priority of one of ``queue``'s groups (by pk or name); 0 (the public) if none."""
    found = PriorityGroup.objects.filter(queue=queue, **lookup).values_list("priority", flat=True)
    return next(iter(found), 0)


def bind_device(queue: Queue, identity: str, device: str, now: float | None = None) -> None:
    """With one device per person, make ``device`` hold ``identity``'s place (the newest device
    takes over a waiting place; its other devices' sockets are told). DeviceInUse when the
    identity was admitted on another device. A no-op for queues whose devices share a place."""
    if queue.device_policy != Queue.DevicePolicy.ONE:
        return
    now = _now(now)
    binding = _call(queue, lambda s: s.bind_device(queue.store_id, identity, device, now), now)
    if binding.held:
        raise DeviceInUse()
    if binding.previous is not None:
        signals.device_moved.send(
            sender=Queue, queue=queue, identity=identity, device=device, previous=binding.previous
        )


def status(queue: Queue, identity: str, now: float | None = None) -> Status:
    """The current truth for ``identity``: its position, or its pass if it was admitted."""
    now = _now(now)
    located = _call(queue, lambda s: s.locate(queue.store_id, identity, now), now)
    return _status(queue, located.placement, located.counts, now)


def statuses(
    queue: Queue, identities: Sequence[str], now: float | None = None
) -> dict[str, Status]:
    """``status`` of many identities, read in one store round trip where the store can (a
    socket process's resyncs)."""
    now = _now(now)
    located = _call(queue, lambda s: s.locate_many(queue.store_id, identities, now), now)
    return {
        identity: _status(queue, found.placement, found.counts, now)
        for identity, found in zip(identities, located, strict=True)
    }


# -- presence -----------------------------------------------------------------------------
# One definition: an identity is *present* while one of its connections (a socket, on any
# server) is open and heartbeating: the notifier passes over it. Each connection event also
# marks a waiting entry *seen*; an entry unseen for longer than its grace is abandoned, by the
# cleanup or by the admission that reaches it. PRESENCE_TIMEOUT is within the grace floor
# (three heartbeats; a system check): whoever presence counts as connected is seen.


def open_connections(
    queue: Queue, identities: Sequence[str], now: float | None = None
) -> dict[str, Status]:
    """What a socket does on connecting: one more open connection of each identity, its
    status, and its waiting entry marked seen; for many connections at once, in three store
    round trips (a socket process's connects of the last moment). An identity twice counts as
    two connections."""
    now = _now(now)
    presence.mark_connected_many(queue.store_id, identities, now)
    unique = list(dict.fromkeys(identities))
    located = _call(queue, lambda s: s.locate_many(queue.store_id, unique, now), now)
    waiting = [
        identity
        for identity, found in zip(unique, located, strict=True)
        if found.placement is not None and found.placement.state is EntryState.WAITING
    ]
    if waiting:
        _call(queue, lambda s: s.touch_many(queue.store_id, waiting, now), now)
    return {
        identity: _status(queue, found.placement, found.counts, now)
        for identity, found in zip(unique, located, strict=True)
    }


def connected(queue: Queue, identities: Iterable[str], now: float | None = None) -> set[str]:
    """The identities among these that are present: one of their connections is open."""
    return presence.connected(queue.store_id, identities, now)


def disconnect(
    queue: Queue, identity: str, now: float | None = None, *, waiting: bool = True
) -> None:
    """One connection of ``identity`` closed; a ``waiting`` entry's grace counts from now."""
    presence.mark_disconnected(queue.store_id, identity, _now(now))
    if waiting:
        heartbeat(queue, identity, now)


def heartbeat(queue: Queue, identity: str, now: float | None = None) -> bool:
    """Mark the identity's waiting entry seen (a REST heartbeat, a closing socket: neither
    makes it present); False when it has no live entry."""
    now = _now(now)
    return _call(queue, lambda s: s.touch(queue.store_id, identity, now), now)


def heartbeats(queue: Queue, identities: Sequence[str], now: float | None = None) -> set[str]:
    """The open sockets of these identities are still there: each present again and its
    waiting entry seen, in two round trips (a socket process's heartbeats of the last
    moment); returns those with no live entry."""
    now = _now(now)
    presence.refresh_many(queue.store_id, identities, now)
    live = _call(queue, lambda s: s.touch_many(queue.store_id, identities, now), now)
    return {identity for identity, ok in zip(identities, live, strict=True) if not ok}


def leave(queue: Queue, identity: str, now: float | None = None) -> Change:
    """Take the identity out of line. Raises EntryNotFound when it is not waiting."""
    now = _now(now)
    change = _call(queue, lambda s: s.leave(queue.store_id, identity, now), now)
    if change is None:
        raise EntryNotFound()
    _write_rows(queue, [change])
    signals.entries_departed.send(sender=Queue, queue=queue, changes=[change])
    return change


def _status(queue: Queue, placement: Placement | None, counts: Counts, now: float) -> Status:
    """What ``identity`` sees, from its placement and the counts read with it."""
    common = {
        "queue": queue.slug,
        "queue_state": counts.state.value,
        "waiting": counts.waiting,
        "active": counts.active,
        "admitted_total": counts.admitted_total,
        "departed_total": counts.departed_total,
        "stock": counts.stock,
    }
    if placement is None:
        return Status(state=None, seq=None, position=None, eta_seconds=None, **common)
    if placement.state is EntryState.ADMITTED:
        token = issue_pass(
            queue,
            placement.seq,
            placement.identity,
            placement.admitted_at or now,
            placement.expires_at or now,
        )
        return Status(
            state=placement.state.value,
            seq=placement.seq,
            position=0,
            eta_seconds=0,
            pass_token=token,
            pass_expires_at=placement.expires_at,
            **common,
        )
    return Status(
        state=placement.state.value,
        seq=placement.seq,
        position=placement.position,
        order=placement.order,
        eta_seconds=eta(queue, placement.position, counts, now),
        sold_out_likely=sold_out_likely(placement.position, counts.active, counts.stock),
        **common,
    )


def sold_out_likely(position: int, active: int, stock: int | None) -> bool:
    """Whether the stock will likely be gone before ``position``'s turn: the pass holders and
    the people ahead are at least as many as the tickets left, and each buys one at least."""
    return stock is not None and active + position - 1 >= stock


def set_stock(queue: Queue, remaining: int | None) -> None:
    """Mirror what is left to sell (None: unknown) into the store, where each status and live
    update reads it: people far enough behind are told it will likely run out first. The row
    (``Queue.stock``) is the record; ``ticketqueue.inventory`` keeps both and closes at zero."""
    _call(queue, lambda s: s.set_stock(queue.store_id, remaining))


def outflow_rate(queue: Queue, counts: Counts, now: float) -> float | None:
    """Admissions per second while people wait (``core.line_rate``): the rate limit and the
    capacity over the mean time a pass is held, else as measured this busy spell; None while
    unknown."""
    hold = mean_hold(counts.passes_ended, counts.ended_hold, counts.hold_exposure, counts.active)
    return line_rate(queue.policy, hold, measured_rate(counts.flow, now, counts.admitted_total))


def eta(queue: Queue, position: int, counts: Counts, now: float) -> int | None:
    return estimate_eta(position, outflow_rate(queue, counts, now), None)


# -- passes ------------------------------------------------------------------------------


def issue_pass(queue: Queue, seq: int, identity: str, admitted_at: float, expires_at: float) -> str:
    """The signed pass of one admission; signing again yields the same claims."""
    (token,) = issue_passes(queue, [Admission(seq, identity, admitted_at, expires_at, 0)])
    return token


def issue_passes(queue: Queue, admissions: Iterable[Admission]) -> list[str]:
    """The signed passes of these admissions, in order: one signature each, the settings and
    the queue's id read once for the batch (a tick signs a thousand)."""
    issuer, queue_id, sign = queue_settings.PASS_ISSUER, queue.store_id, passes.sign
    admissions = list(admissions)
    devices: dict[str, str] = {}
    if queue.device_policy == Queue.DevicePolicy.ONE and admissions:
        # Bound to the device that held the place when admitted (it cannot move after).
        devices = get_store().devices(queue_id, [a.identity for a in admissions])
    return [
        sign(
            PassClaims(
                issuer,
                queue_id,
                a.seq,
                a.identity,
                int(a.admitted_at),
                int(a.expires_at),
                devices.get(a.identity),
            )
        )
        for a in admissions
    ]


def release(
    token: str | PassClaims, *, identity: str | None = None, now: float | None = None
) -> Change:
    """The order behind this pass completed: free its slot at once.

    ``token`` is the signed pass, or the claims the gate verified (``request.queue_pass``).
    Raises a PassError for a forged, expired or foreign pass, PassNotActive when it was
    already released, revoked or expired; nothing changes then.
    """
    return release_pass(token, identity=identity, now=now)[0]


def release_pass(
    token: str | PassClaims,
    *,
    identity: str | None = None,
    now: float | None = None,
    refill_now: bool = True,
) -> tuple[Change, Queue]:
    """``release``, also giving the pass's queue; ``refill_now=False`` leaves the freed slot to
    the caller (``ticketqueue.release`` counts the stock first)."""
    now = _now(now)
    claims = token if isinstance(token, PassClaims) else passes.verify(token, now=now)
    if identity is not None and claims.identity != identity:
        raise PassWrongIdentity()
    try:
        queue = Queue.objects.get(pk=claims.queue_id)
    except (Queue.DoesNotExist, ValueError):
        raise QueueNotFound() from None
    return release_entry(queue, claims.seq, now, refill_now=refill_now), queue


def release_entry(
    queue: Queue, seq: int, now: float | None = None, *, refill_now: bool = True
) -> Change:
    now = _now(now)
    change = _call(queue, lambda s: s.release(queue.store_id, seq, now), now)
    if change is None:
        raise PassNotActive()
    _write_rows(queue, [change])
    log.info("pass released", extra={"queue": queue.slug, "seq": seq})
    signals.pass_released.send(sender=Queue, queue=queue, change=change)
    if refill_now:
        refill(queue, 1, now)
    return change


def revoke(
    queue: Queue, seqs: Sequence[int], reason: str = "operator", now: float | None = None
) -> list[Change]:
    now = _now(now)
    changes = _call(queue, lambda s: s.revoke(queue.store_id, list(seqs), now), now)
    _write_rows(queue, changes)
    if changes:
        signals.entries_revoked.send(sender=Queue, queue=queue, changes=changes, reason=reason)
        refill(queue, sum(1 for c in changes if c.admitted_at is not None), now)
    return changes


def refill(queue: Queue, freed: int, now: float | None = None) -> list[Admission]:
    """A pass ended by release or revoke: admit the next in line now instead of at the next
    tick (up to a second later), up to ``freed`` people.

    The store decides as in a tick (one atomic step: capacity, the rate bucket, only while
    OPEN), so nothing is admitted that a tick would not have admitted. Only what the admitted
    person needs happens here: the pass, the ``granted`` broadcast and, for someone away from
    the page, the notification (handed to this process's courier). The rows follow from the
    journal at the next tick, as the position broadcast to the rest of the line does (its
    admitted total already counts these). ``REFILL_ON_RELEASE = False`` leaves it to the tick.
    A failure here is logged, never raised: the release it follows has happened, and the next
    tick admits anyway.
    """
    if freed <= 0 or not queue_settings.REFILL_ON_RELEASE:
        return []
    now = _now(now)
    try:
        admitted = get_store().admit(queue.store_id, now, limit=freed)
        if not admitted:
            return []
        signed = list(zip(admitted, issue_passes(queue, admitted), strict=True))
        log.info(
            "entries admitted on release",
            extra={"queue": queue.slug, "seqs": [a.seq for a in admitted]},
        )
        signals.entries_admitted.send(
            sender=Queue, queue=queue, admissions=admitted, passes=_passes_by_seq(signed)
        )
        from .courier import get_courier

        get_courier().turn(queue, admitted)
        return admitted
    except Exception:
        log.exception("refill failed; the next tick admits", extra={"queue": queue.slug})
        return []


def end_idle_passes(queue: Queue, now: float | None = None) -> list[Change]:
    """Admitted people whose every connection has been gone longer than the queue's pass idle
    grace give their slot back: their passes end as ABANDONED (reason ``abandoned``), so the
    capacity goes to people who are there. Someone who never connected counts as gone since
    their admission. Off (nothing read) while the queue has no grace."""
    if not queue.pass_idle_grace:
        return []
    now = _now(now)
    held = _call(queue, lambda s: s.passes(queue.store_id, expires_after=now), now)
    if not held:
        return []
    cutoff = now - max(float(queue.pass_idle_grace), min_disconnect_grace())
    away = presence.away(queue.store_id, [p.identity for p in held], now)
    idle = [
        p.seq
        for p in held
        if p.identity in away and max(away[p.identity] or 0.0, p.admitted_at) < cutoff
    ]
    if not idle:
        return []
    changes = _call(queue, lambda s: s.end_idle(queue.store_id, idle, now), now)
    _write_rows(queue, changes)
    if changes:
        log.info(
            "idle passes ended",
            extra={"queue": queue.slug, "seqs": [c.seq for c in changes]},
        )
        signals.entries_revoked.send(
            sender=Queue, queue=queue, changes=changes, reason=EntryState.ABANDONED.value
        )
    return changes


# -- outflow -----------------------------------------------------------------------------


def tick(
    queue: Queue, now: float | None = None, *, limit: int | None = None, use_rate: bool = True
) -> TickResult:
    """Expire due passes, admit by the outflow policy, write the rows, sign the passes.

    Safe to run in any number of processes at once: expiry and admission are atomic in the
    store, and the rows only ever move forward.
    """
    now = _now(now)
    if queue.state == QueueState.SCHEDULED and queue.opens_at and queue.opens_at.timestamp() <= now:
        _open_when_due(queue, now)
    store = get_store()
    qid = queue.store_id
    if behind_rows(queue, now):
        repair(queue, now)
    expired = _call(queue, lambda s: s.expire(qid, now), now)
    admitted = store.admit(qid, now, limit=limit, use_rate=use_rate)
    # The admission abandons heads unseen past their grace: they hear it like the cleanup's.
    abandoned = [c for c in sync_journal(queue) if c.state is EntryState.ABANDONED]
    departed = store.drain_departures(qid)
    counts = store.counts(qid, now)
    signed = list(zip(admitted, issue_passes(queue, admitted), strict=True))
    result = TickResult(
        queue_id=qid,
        slug=queue.slug,
        expired=expired,
        admitted=admitted,
        passes=signed,
        departed=list(departed.orders),
        departed_total=departed.departed_total,
        counts=counts,
        eta_rate=outflow_rate(queue, counts, now),
    )
    if expired:
        signals.passes_expired.send(sender=Queue, queue=queue, changes=expired)
    if abandoned:
        signals.entries_departed.send(sender=Queue, queue=queue, changes=abandoned)
    if admitted:
        log.info(
            "entries admitted",
            extra={"queue": queue.slug, "count": len(admitted), "first_seq": admitted[0].seq},
        )
        signals.entries_admitted.send(
            sender=Queue, queue=queue, admissions=admitted, passes=_passes_by_seq(signed)
        )
    signals.queue_ticked.send(sender=Queue, queue=queue, result=result)
    return result


def _passes_by_seq(signed: Sequence[tuple[Admission, str]]) -> dict[int, str]:
    """``{seq: pass}`` for receivers of entries_admitted, so nobody signs a pass twice."""
    return {admission.seq: token for admission, token in signed}


def _open_when_due(queue: Queue, now: float) -> None:
    """A scheduled queue opens on the first tick after ``opens_at``; when several workers
    tick at once, one opens it (and draws the pre-queue) and the others see it open."""
    try:
        open_queue(queue, now)
    except InvalidTransition:
        queue.refresh_from_db()


def abandon_unseen(queue: Queue, now: float | None = None) -> list[Change]:
    """Waiting entries unseen for longer than the queue's disconnect grace become abandoned."""
    now = _now(now)
    changes = _call(
        queue, lambda s: s.abandon(queue.store_id, now - disconnect_grace(queue), now), now
    )
    _sync(queue, changes)
    if changes:
        signals.entries_departed.send(sender=Queue, queue=queue, changes=changes)
    return changes


# -- journal -> rows ---------------------------------------------------------------------


def sync_journal(queue: Queue, batch: int = 10_000) -> list[Change]:
    """Copy the store's unacknowledged changes into the rows, acknowledge them, and return
    them.

    Also finishes the work of a process that died between a store change and its rows.
    """
    store = get_store()
    synced: list[Change] = []
    while True:
        changes = store.journal(queue.store_id, limit=batch)
        if not changes:
            return synced
        _sync(queue, changes)
        synced.extend(changes)
        if len(changes) < batch:
            return synced


def _sync(queue: Queue, changes: Iterable[Change]) -> None:
    """Make the rows say what these changes say, then acknowledge them. Idempotent."""
    changes = list(changes)
    rows.write(queue, changes)
    if changes:
        get_store().ack(queue.store_id, changes)


def _write_rows(queue: Queue, changes: Sequence[Change]) -> None:
    """Write what the store just did into the rows, now if the database lets us.

    The store's change is made and stands (a released pass is released, whatever happens to
    the rows): if the database is away, the change stays in the store's journal and the next
    tick's journal sync writes it, so the caller is answered, and told others, as done. Inside
    the caller's transaction a database error is the caller's: its transaction is lost anyway.
    """
    try:
        _sync(queue, changes)
    except DatabaseError:
        if connection.in_atomic_block:
            raise
        log.warning(
            "rows not written, left to the next journal sync",
            exc_info=True,
            extra={"queue": queue.slug, "seqs": [c.seq for c in changes]},
        )


# -- operator actions --------------------------------------------------------------------


def _move(queue: Queue, target: QueueState, now: float) -> QueueState:
    """Lock the row, check the move, set the new state; returns the previous state."""
    locked = Queue.objects.select_for_update().get(pk=queue.pk)
    previous = QueueState(locked.state)
    check_queue_transition(previous, target)
    queue.state = locked.state = target.value
    return previous


def open_queue(queue: Queue, now: float | None = None, *, seed: int | None = None) -> Queue:
    """Open a scheduled queue (shuffling its pre-queue once, with a recorded seed) or a
    paused one."""
    now = _now(now)
    ensure_loaded(queue, now)
    sync_journal(queue)  # every pre-queue row exists before the draw
    with transaction.atomic():
        previous = _move(queue, QueueState.OPEN, now)
        fields = ["state", "updated_at"]
        if previous is QueueState.SCHEDULED:
            queue.prequeue_seed = secrets.randbits(62) if seed is None else seed
            queue.opened_at = _dt(now)
            fields += ["prequeue_seed", "opened_at"]
            orders = get_store().shuffle_prequeue(queue.store_id, queue.prequeue_seed)
            rows = list(Entry.objects.filter(queue=queue, seq__in=list(orders)).only("pk", "seq"))
            for row in rows:
                row.order = orders[row.seq]
            Entry.objects.bulk_update(rows, ["order"], batch_size=2000)
            log.info(
                "pre-queue shuffled",
                extra={"queue": queue.slug, "seed": queue.prequeue_seed, "count": len(orders)},
            )
        queue.save(update_fields=fields)
        configure(queue, now)
    signals.queue_state_changed.send(
        sender=Queue, queue=queue, previous=previous.value, state=queue.state
    )
    return queue


def resume(queue: Queue, now: float | None = None) -> Queue:
    return open_queue(queue, now)


def pause(queue: Queue, now: float | None = None) -> Queue:
    now = _now(now)
    with transaction.atomic():
        previous = _move(queue, QueueState.PAUSED, now)
        queue.save(update_fields=["state", "updated_at"])
        ensure_loaded(queue, now)
        configure(queue, now)
    signals.queue_state_changed.send(
        sender=Queue, queue=queue, previous=previous.value, state=queue.state
    )
    return queue


def close(queue: Queue, now: float | None = None) -> int:
    """Close the queue (sold out or ended): no more joins, every waiting entry is revoked.

    Passes already issued stay valid until they expire or are released. Returns how many
    waiting entries were turned away.
    """
    now = _now(now)
    ensure_loaded(queue, now)
    sync_journal(queue)
    with transaction.atomic():
        previous = _move(queue, QueueState.CLOSED, now)
        queue.closed_at = _dt(now)
        queue.save(update_fields=["state", "closed_at", "updated_at"])
        turned_away = get_store().close(queue.store_id, now)
        Entry.objects.filter(queue=queue, state=EntryState.WAITING.value).update(
            state=EntryState.REVOKED.value, ended_at=_dt(now)
        )
    log.info("queue closed", extra={"queue": queue.slug, "revoked": turned_away})
    signals.queue_state_changed.send(
        sender=Queue, queue=queue, previous=previous.value, state=queue.state
    )
    signals.queue_closed.send(sender=Queue, queue=queue, revoked=turned_away)
    return turned_away


def settle_closed(queue: Queue, now: float | None = None) -> int:
    """Revoke the rows of a closed queue still marked waiting; returns how many.

    A join whose store step came before the close but whose row was committed after the
    close's UPDATE leaves such a row (the store turned the entry away with the rest, and its
    client hears ``closed``). The cleanup settles them: a closed queue has nobody waiting.
    """
    if queue.state != QueueState.CLOSED.value:
        return 0
    settled = Entry.objects.filter(queue=queue, state=EntryState.WAITING.value).update(
        state=EntryState.REVOKED.value, ended_at=_dt(_now(now))
    )
    if settled:
        log.info("closed queue settled", extra={"queue": queue.slug, "revoked": settled})
    return settled


def rebuild(queue: Queue, now: float | None = None) -> int:
    """Load the queue into the store from its rows: same entries, same order, same passes.

    Returns how many live entries were loaded. Only one process rebuilds a queue at a time;
    the others get QueueUnavailable and retry.
    """
    now = _now(now)
    store = get_store()
    owner = uuid.uuid4().hex
    lock = f"rebuild:{queue.store_id}"
    if not store.acquire_lock(lock, owner, ttl=600):
        raise QueueUnavailable()
    try:
        if store.is_loaded(queue.store_id):
            sync_journal(queue)  # the rows must hold everything the store knows
        try:
            queue.refresh_from_db()
        except Queue.DoesNotExist:
            # Deleted since the caller read it (an API process keeps rows a moment).
            raise QueueNotFound() from None
        rows = Entry.objects.filter(queue=queue)
        waiting = (
            WaitingRecord(seq, identity, order, now)
            for seq, identity, order in rows.in_line()
            .values_list("seq", "identity", "order")
            .iterator(chunk_size=10_000)
        )
        active = (
            ActiveRecord(seq, identity, admitted.timestamp(), expires.timestamp(), number or 0)
            for seq, identity, admitted, expires, number in rows.filter(
                state=EntryState.ADMITTED.value, pass_expires_at__gt=_dt(now)
            )
            .order_by("seq")
            .values_list("seq", "identity", "admitted_at", "pass_expires_at", "admission_number")
            .iterator(chunk_size=10_000)
        )
        next_seq = rows.aggregate(m=Max("seq"))["m"] or 0
        admitted_total = (
            AdmissionRow.objects.filter(queue=queue).aggregate(m=Max("number"))["m"] or 0
        )
        # The passes each identity had, so passes_per_identity outlives a lost store.
        passes_given = dict(
            rows.filter(admitted_at__isnull=False)
            .values_list("identity")
            .annotate(n=Count("pk"))
            .values_list("identity", "n")
        )
        store.rebuild(
            queue.store_id,
            _config(queue),
            waiting=waiting,
            active=active,
            next_seq=next_seq,
            admitted_total=admitted_total,
            now=now,
            passes_given=passes_given,
        )
        stock = _recorded_stock(queue)
        if stock is not None:  # what is left to sell outlives a lost store too
            store.set_stock(queue.store_id, stock)
        live = rows.live().count()
        log.info("queue rebuilt", extra={"queue": queue.slug, "live": live})
        return live
    finally:
        store.release_lock(lock, owner)


def queue_info(queue: Queue, now: float | None = None) -> Status:
    """The line as anyone sees it before joining: its counts and the wait of a join now."""
    now = _now(now)
    counts = _call(queue, lambda s: s.counts(queue.store_id, now), now)
    return Status(
        queue=queue.slug,
        queue_state=counts.state.value,
        state=None,
        seq=None,
        position=None,
        waiting=counts.waiting,
        active=counts.active,
        # A closed queue takes no joins: no wait to promise.
        eta_seconds=None
        if counts.state is QueueState.CLOSED
        else eta(queue, counts.waiting + 1, counts, now),
        sold_out_likely=sold_out_likely(counts.waiting + 1, counts.active, counts.stock),
    )
