"""MemoryStore: the store contract in one process, for the embedded default and for tests.

Every operation runs under one lock, which gives the same atomicity Redis gives the Lua scripts.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sortedcontainers import SortedList

from ..core import (
    FLOW_SAMPLE_EVERY,
    Bucket,
    EntryState,
    LimitWindow,
    OutflowPolicy,
    PassLimitReached,
    QueueClosed,
    QueueFull,
    QueueMode,
    QueueState,
    QueueUnavailable,
    flow_in_window,
    limit_check,
    priority_order,
    shuffle_order,
)
from .base import (
    STALE_SKIP_LIMIT,
    ActiveRecord,
    Admission,
    Change,
    Counts,
    Departures,
    DeviceBinding,
    Joined,
    LimitHit,
    LimitResult,
    Located,
    Placement,
    QueueConfig,
    QueueStore,
    StoreDump,
    WaitingRecord,
    departed_total_after_loss,
)
from .memory_companions import (
    MemoryBroadcast,
    MemoryClaims,
    MemoryCounters,
    MemoryLeases,
    MemoryPresence,
)

__all__ = ["MemoryStore"]

FLOW_SAMPLES_KEPT = 64
#: Expired limit counters are swept at least this often (seconds of the callers' clock), and
#: whenever the counters held double since the last sweep.
LIMIT_SWEEP_EVERY = 60.0


@dataclass
class _Queue:
    config: QueueConfig
    bucket: Bucket
    next_seq: int = 0
    admitted_total: int = 0
    line: SortedList = field(default_factory=SortedList)  # (order, seq)
    waiting: dict[int, WaitingRecord] = field(default_factory=dict)
    active: dict[int, ActiveRecord] = field(default_factory=dict)
    expiries: SortedList = field(default_factory=SortedList)  # (expires_at, seq)
    seq_of: dict[str, int] = field(default_factory=dict)  # identity -> live seq
    journal: dict[int, Change] = field(default_factory=dict)
    departures: list[float] = field(default_factory=list)  # orders, not yet drained
    departed_total: int = 0
    flow: list[tuple[float, int]] = field(default_factory=list)
    # How long passes are held (Counts.passes_ended, hold_exposure): the ended ones' seconds,
    # and the sum of the active ones' admission times (their seconds so far at any ``now``).
    passes_ended: int = 0
    held_seconds: float = 0.0
    admitted_at_sum: float = 0.0
    stock: int | None = None
    passes_given: dict[str, int] = field(default_factory=dict)  # identity -> passes it had

    @property
    def policy(self) -> OutflowPolicy:
        return OutflowPolicy(self.config.capacity, self.config.rate_per_minute)


class MemoryStore(QueueStore):
    in_process = True

    def __init__(self) -> None:
        self.presence = MemoryPresence()
        self.leases = MemoryLeases()
        self.counters = MemoryCounters()
        self.claims = MemoryClaims()
        self.broadcast = MemoryBroadcast()
        self._queues: dict[str, _Queue] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._mutex = threading.RLock()
        self._versions = itertools.count(1)
        # queue id -> limit name -> (counter, when it no longer matters, its period)
        self._limits: dict[str, dict[str, tuple[LimitWindow, float, float]]] = {}
        self._limit_count = 0
        self._limit_sweep_at = -math.inf
        self._limit_sweep_size = 1_024
        # queue id -> identity -> the device holding its place (bind_device)
        self._devices: dict[str, dict[str, str]] = {}
        # (queue id, name) -> (uses, counted until) (claim_use), swept as it doubles
        self._claims: dict[tuple[str, str], tuple[int, float]] = {}
        self._claims_sweep_size = 1_024
        # (queue id, milestone) -> its high-water mark (advance_mark)
        self._marks: dict[tuple[str, str], float] = {}

    # -- helpers ------------------------------------------------------------------------
    def _get(self, queue_id: str) -> _Queue:
        try:
            return self._queues[queue_id]
        except KeyError:
            raise QueueUnavailable(f"Queue {queue_id} is not loaded in the store.") from None

    def _record(self, q: _Queue, change: Change) -> Change:
        change = replace(change, token=str(next(self._versions)))
        q.journal.pop(change.seq, None)  # re-insert so the journal stays oldest first
        q.journal[change.seq] = change
        return change

    def _unwait(self, q: _Queue, seq: int) -> WaitingRecord:
        rec = q.waiting.pop(seq)
        q.line.remove((rec.order, seq))
        return rec

    def _end_waiting(self, q: _Queue, seq: int, state: EntryState, now: float) -> Change:
        rec = self._unwait(q, seq)
        q.seq_of.pop(rec.identity, None)
        q.departures.append(rec.order)
        q.departed_total += 1
        if not q.waiting:
            q.flow.clear()  # the busy spell ended (as in _sample_flow)
        return self._record(q, Change(seq, rec.identity, state, rec.order, now))

    def _end_active(self, q: _Queue, seq: int, state: EntryState, now: float) -> Change:
        rec = q.active.pop(seq)
        q.expiries.remove((rec.expires_at, seq))
        q.seq_of.pop(rec.identity, None)
        q.passes_ended += 1
        q.held_seconds += now - rec.admitted_at
        q.admitted_at_sum -= rec.admitted_at
        return self._record(
            q,
            Change(
                seq,
                rec.identity,
                state,
                0.0,
                now,
                rec.admitted_at,
                rec.expires_at,
                rec.admission_number,
            ),
        )

    def _admit_one(self, q: _Queue, seq: int, identity: str, order: float, now: float) -> Admission:
        expires_at = now + q.config.purchase_window
        q.admitted_total += 1
        number = q.admitted_total
        q.active[seq] = ActiveRecord(seq, identity, now, expires_at, number)
        q.expiries.add((expires_at, seq))
        q.admitted_at_sum += now
        q.passes_given[identity] = q.passes_given.get(identity, 0) + 1
        self._record(
            q, Change(seq, identity, EntryState.ADMITTED, order, now, now, expires_at, number)
        )
        return Admission(seq, identity, now, expires_at, number)

    def _sample_flow(self, q: _Queue, now: float) -> None:
        """Sample the outflow while people wait; an empty line ends the busy spell."""
        if not q.waiting:
            q.flow.clear()
        elif not q.flow or now - q.flow[-1][0] >= FLOW_SAMPLE_EVERY:
            q.flow.append((now, q.admitted_total))
            del q.flow[:-FLOW_SAMPLES_KEPT]

    def _counts(self, q: _Queue, now: float) -> Counts:
        return Counts(
            q.config.state,
            len(q.waiting),
            len(q.active),
            q.admitted_total,
            flow_in_window(q.flow, now),
            q.departed_total,
            q.next_seq,
            q.passes_ended,
            q.held_seconds + len(q.active) * now - q.admitted_at_sum,
            q.stock,
            q.held_seconds,
        )

    def _placement(self, q: _Queue, seq: int, created: bool = False) -> Placement:
        if seq in q.waiting:
            rec = q.waiting[seq]
            position = q.line.bisect_left((rec.order, seq)) + 1
            return Placement(
                seq, rec.identity, EntryState.WAITING, position, rec.order, created=created
            )
        act = q.active[seq]
        return Placement(
            seq,
            act.identity,
            EntryState.ADMITTED,
            0,
            0.0,
            act.admitted_at,
            act.expires_at,
            created,
            act.admission_number,
        )

    # -- set-up -------------------------------------------------------------------------
    def configure(self, queue_id: str, config: QueueConfig, now: float) -> None:
        with self._mutex:
            q = self._queues.get(queue_id)
            if q is None:
                policy = OutflowPolicy(config.capacity, config.rate_per_minute)
                self._queues[queue_id] = _Queue(config=config, bucket=policy.full_bucket(now))
                return
            if q.config.state is QueueState.CLOSED:
                config = replace(config, state=QueueState.CLOSED)  # closed is final
            q.config = config

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
        policy = OutflowPolicy(config.capacity, config.rate_per_minute)
        q = _Queue(config=config, bucket=policy.full_bucket(now), next_seq=next_seq)
        q.admitted_total = admitted_total
        for w in waiting:
            q.waiting[w.seq] = w
            q.line.add((w.order, w.seq))
            q.seq_of[w.identity] = w.seq
        for a in active:
            q.active[a.seq] = a
            q.expiries.add((a.expires_at, a.seq))
            q.seq_of[a.identity] = a.seq
            q.admitted_at_sum += a.admitted_at
        with self._mutex:
            old = self._queues.get(queue_id)
            if passes_given is not None:
                q.passes_given = dict(passes_given)
            if old is not None:  # departure numbers and the hold measurements go on
                q.departures, q.departed_total = old.departures, old.departed_total
                q.passes_ended, q.held_seconds = old.passes_ended, old.held_seconds
                q.stock = old.stock
                if passes_given is None:
                    q.passes_given = old.passes_given
            else:
                q.departed_total = departed_total_after_loss(now)
            self._queues[queue_id] = q

    def delete(self, queue_id: str) -> None:
        with self._mutex:
            self._queues.pop(queue_id, None)
            self._limit_count -= len(self._limits.pop(queue_id, {}))
            for key in [k for k in self._claims if k[0] == queue_id]:
                del self._claims[key]
            self._devices.pop(queue_id, None)
            for key in [k for k in self._marks if k[0] == queue_id]:
                del self._marks[key]

    def is_loaded(self, queue_id: str) -> bool:
        with self._mutex:
            return queue_id in self._queues

    # -- people -------------------------------------------------------------------------
    def join(self, queue_id: str, identity: str, now: float, priority: int = 0) -> Joined:
        with self._mutex:
            q = self._get(queue_id)
            seq = q.seq_of.get(identity)
            if seq is not None:
                return Joined(self._placement(q, seq), self._counts(q, now))
            cfg = q.config
            if not cfg.state.takes_joins:
                raise QueueClosed()
            if cfg.max_size is not None and len(q.waiting) >= cfg.max_size:
                raise QueueFull()
            limit = cfg.passes_per_identity
            if limit is not None and q.passes_given.get(identity, 0) >= limit:
                raise PassLimitReached()
            q.next_seq += 1
            seq = q.next_seq
            order = priority_order(seq, priority)
            q.seq_of[identity] = seq
            if cfg.state.admits and cfg.mode is not QueueMode.ALWAYS:
                admit_now = cfg.mode is QueueMode.OFF
                if cfg.mode is QueueMode.AUTO and not q.waiting:
                    q.bucket = q.policy.refill(q.bucket, now)
                    if q.policy.allowance(active=len(q.active), waiting=1, tokens=q.bucket.tokens):
                        q.bucket = Bucket(q.bucket.tokens - 1, q.bucket.at)
                        admit_now = True
                if admit_now:
                    self._admit_one(q, seq, identity, order, now)
                    self._sample_flow(q, now)
                    return Joined(self._placement(q, seq, created=True), self._counts(q, now))
            rec = WaitingRecord(seq, identity, order, now)
            q.waiting[seq] = rec
            q.line.add((order, seq))
            self._record(q, Change(seq, identity, EntryState.WAITING, order, now))
            return Joined(self._placement(q, seq, created=True), self._counts(q, now))

    def locate(self, queue_id: str, identity: str, now: float) -> Located:
        with self._mutex:
            q = self._get(queue_id)
            seq = q.seq_of.get(identity)
            placement = None if seq is None else self._placement(q, seq)
            return Located(placement, self._counts(q, now))

    def touch(self, queue_id: str, identity: str, now: float) -> bool:
        with self._mutex:
            q = self._get(queue_id)
            seq = q.seq_of.get(identity)
            if seq is None:
                return False
            if seq in q.waiting:
                q.waiting[seq] = replace(q.waiting[seq], seen_at=now)
            return True

    def bind_device(self, queue_id: str, identity: str, device: str, now: float) -> DeviceBinding:
        with self._mutex:
            q = self._get(queue_id)
            bound = self._devices.setdefault(queue_id, {})
            current = bound.get(identity)
            if current == device:
                return DeviceBinding()
            if current is not None and q.seq_of.get(identity) in q.active:
                return DeviceBinding(current, held=True)
            bound[identity] = device
            return DeviceBinding(current)

    def devices(self, queue_id: str, identities: Sequence[str]) -> dict[str, str]:
        with self._mutex:
            bound = self._devices.get(queue_id, {})
            return {i: bound[i] for i in identities if i in bound}

    def leave(self, queue_id: str, identity: str, now: float) -> Change | None:
        with self._mutex:
            q = self._get(queue_id)
            seq = q.seq_of.get(identity)
            if seq is None or seq not in q.waiting:
                return None
            return self._end_waiting(q, seq, EntryState.LEFT, now)

    def abandon(self, queue_id: str, seen_before: float, now: float) -> list[Change]:
        with self._mutex:
            q = self._get(queue_id)
            stale = [s for s, w in q.waiting.items() if w.seen_at < seen_before]
            return [self._end_waiting(q, s, EntryState.ABANDONED, now) for s in sorted(stale)]

    # -- outflow ------------------------------------------------------------------------
    def admit(
        self, queue_id: str, now: float, *, limit: int | None = None, use_rate: bool = True
    ) -> list[Admission]:
        with self._mutex:
            q = self._get(queue_id)
            if not q.config.state.admits:
                return []
            q.bucket = q.policy.refill(q.bucket, now)
            tokens = q.bucket.tokens if use_rate else float(len(q.waiting))
            n = q.policy.allowance(
                active=len(q.active), waiting=len(q.waiting), tokens=tokens, limit=limit
            )
            grace = q.config.disconnect_grace
            seen_before = -math.inf if grace is None else now - grace
            # Walk the line from the head; as the Lua does, the stale ones are abandoned
            # first, then the chosen admitted (the journal and departures in that order).
            chosen: list[tuple[float, int]] = []
            stale: list[int] = []
            for order, seq in q.line:
                if len(chosen) >= n:
                    break
                if q.waiting[seq].seen_at >= seen_before:
                    chosen.append((order, seq))
                elif len(stale) < STALE_SKIP_LIMIT:
                    stale.append(seq)
                else:
                    break
            for seq in sorted(stale):
                self._end_waiting(q, seq, EntryState.ABANDONED, now)
            admitted: list[Admission] = []
            for order, seq in chosen:
                rec = self._unwait(q, seq)
                admitted.append(self._admit_one(q, seq, rec.identity, order, now))
            if use_rate and admitted:
                q.bucket = Bucket(q.bucket.tokens - len(admitted), q.bucket.at)
            self._sample_flow(q, now)
            return admitted

    def expire(self, queue_id: str, now: float) -> list[Change]:
        with self._mutex:
            q = self._get(queue_id)
            due = [seq for exp, seq in q.expiries.irange(maximum=(now, float("inf")))]
            return [self._end_active(q, seq, EntryState.EXPIRED, now) for seq in due]

    def release(self, queue_id: str, seq: int, now: float) -> Change | None:
        with self._mutex:
            q = self._get(queue_id)
            if seq not in q.active:
                return None
            return self._end_active(q, seq, EntryState.COMPLETED, now)

    def revoke(self, queue_id: str, seqs: Sequence[int], now: float) -> list[Change]:
        with self._mutex:
            q = self._get(queue_id)
            changes = []
            for seq in seqs:
                if seq in q.waiting:
                    changes.append(self._end_waiting(q, seq, EntryState.REVOKED, now))
                elif seq in q.active:
                    changes.append(self._end_active(q, seq, EntryState.REVOKED, now))
            return changes

    def end_idle(self, queue_id: str, seqs: Sequence[int], now: float) -> list[Change]:
        with self._mutex:
            q = self._get(queue_id)
            return [
                self._end_active(q, seq, EntryState.ABANDONED, now)
                for seq in dict.fromkeys(seqs)
                if seq in q.active
            ]

    def close(self, queue_id: str, now: float) -> int:
        with self._mutex:
            q = self._get(queue_id)
            q.config = replace(q.config, state=QueueState.CLOSED)
            count = len(q.waiting)
            for rec in q.waiting.values():
                q.seq_of.pop(rec.identity, None)
                q.journal.pop(rec.seq, None)  # the rows are closed in bulk
            q.waiting.clear()
            q.line.clear()
            return count

    def set_stock(self, queue_id: str, remaining: int | None) -> None:
        with self._mutex:
            self._get(queue_id).stock = None if remaining is None else max(0, int(remaining))

    def shuffle_prequeue(self, queue_id: str, seed: int) -> dict[int, float]:
        with self._mutex:
            q = self._get(queue_id)
            orders = shuffle_order([(w.seq, w.order) for w in q.waiting.values()], seed)
            q.line.clear()
            for seq, order in orders.items():
                q.waiting[seq] = replace(q.waiting[seq], order=order)
                q.line.add((order, seq))
            return orders

    # -- reading ------------------------------------------------------------------------
    def position(self, queue_id: str, seq: int) -> int | None:
        with self._mutex:
            q = self._get(queue_id)
            rec = q.waiting.get(seq)
            return None if rec is None else q.line.bisect_left((rec.order, seq)) + 1

    def pass_active(self, queue_id: str, seq: int, now: float) -> bool:
        with self._mutex:
            q = self._queues.get(queue_id)
            rec = q.active.get(seq) if q else None
            return rec is not None and rec.expires_at > now

    def head(
        self, queue_id: str, count: int, after: float | None = None, limit: int = 10_000
    ) -> list[WaitingRecord]:
        with self._mutex:
            q = self._get(queue_id)
            skip = 0 if after is None else q.line.bisect_right((after, math.inf))
            stop = max(skip, min(count, skip + max(0, limit)))
            return [q.waiting[seq] for _order, seq in q.line.islice(skip, stop)]

    def passes(
        self,
        queue_id: str,
        expires_after: float = -math.inf,
        expires_by: float = math.inf,
        limit: int = 10_000,
    ) -> list[ActiveRecord]:
        with self._mutex:
            q = self._get(queue_id)
            due = q.expiries.irange((expires_after, math.inf), (expires_by, math.inf))
            return [q.active[seq] for _expires_at, seq in itertools.islice(due, limit)]

    def counts(self, queue_id: str, now: float) -> Counts:
        with self._mutex:
            return self._counts(self._get(queue_id), now)

    def dump(self, queue_id: str) -> StoreDump:
        with self._mutex:
            q = self._get(queue_id)
            return StoreDump(
                config=q.config,
                next_seq=q.next_seq,
                admitted_total=q.admitted_total,
                waiting=[q.waiting[seq] for _, seq in q.line],
                active=sorted(q.active.values(), key=lambda a: a.seq),
            )

    # -- journal and departures -------------------------------------------------------
    def journal(self, queue_id: str, limit: int = 10_000) -> list[Change]:
        with self._mutex:
            q = self._get(queue_id)
            return list(itertools.islice(q.journal.values(), limit))

    def ack(self, queue_id: str, changes: Iterable[Change]) -> None:
        with self._mutex:
            q = self._queues.get(queue_id)
            if q is None:
                return
            for change in changes:
                current = q.journal.get(change.seq)
                if current is not None and current.token == change.token:
                    del q.journal[change.seq]

    def drain_departures(self, queue_id: str) -> Departures:
        with self._mutex:
            q = self._get(queue_id)
            drained, q.departures = q.departures, []
            return Departures(tuple(drained), q.departed_total)

    # -- request limits -------------------------------------------------------------------
    def hit_limits(
        self, queue_id: str, hits: Sequence[LimitHit | tuple[str, int, float]], now: float
    ) -> list[LimitResult]:
        with self._mutex:
            if now >= self._limit_sweep_at or self._limit_count >= self._limit_sweep_size:
                self._sweep_limits(now)
            held = self._limits.get(queue_id, {})
            counted: list[tuple[str, LimitWindow, float]] = []
            results = []
            for hit in hits:
                name, limit, period = hit
                found = held.get(name)
                # A counter made under another period (the limit changed) counts anew.
                fresh = found is None or found[1] <= now or found[2] != float(period)
                state = None if fresh else found[0]
                after, wait = limit_check(state, int(limit), float(period), now)
                results.append(LimitResult(wait is None, wait or 0.0))
                # The counter matters until the end of the window after its own.
                counted.append((name, after, (after.window + 2) * float(period), float(period)))
            if all(r.allowed for r in results):
                held = self._limits.setdefault(queue_id, {})
                for name, after, until, period in counted:
                    self._limit_count += name not in held
                    held[name] = (after, until, period)
            return results

    def claim_use(self, queue_id: str, name: str, uses: int, ttl: float, now: float) -> bool:
        with self._mutex:
            claims = self._claims
            if len(claims) >= self._claims_sweep_size:
                for key in [k for k, (_, until) in claims.items() if until <= now]:
                    del claims[key]
                self._claims_sweep_size = max(1_024, 2 * len(claims))
            count, until = claims.get((queue_id, name), (0, -math.inf))
            if until <= now:
                count, until = 0, now + ttl
            claims[(queue_id, name)] = (count + 1, until)
            return count + 1 <= uses

    def _sweep_limits(self, now: float) -> None:
        for queue_id in list(self._limits):
            held = self._limits[queue_id]
            for name in [n for n, (_, until, _) in held.items() if until <= now]:
                del held[name]
            if not held:
                del self._limits[queue_id]
        self._limit_count = sum(map(len, self._limits.values()))
        self._limit_sweep_at = now + LIMIT_SWEEP_EVERY
        self._limit_sweep_size = max(1_024, 2 * self._limit_count)

    # -- locking ------------------------------------------------------------------------
    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        with self._mutex:
            now = time.monotonic()
            held = self._locks.get(name)
            if held and held[0] != owner and held[1] > now:
                return False
            self._locks[name] = (owner, now + ttl)
            return True

    def marks(self, queue_id: str) -> dict[str, float]:
        with self._mutex:
            return {name: value for (qid, name), value in self._marks.items() if qid == queue_id}

    def advance_mark(self, queue_id: str, name: str, value: float) -> float | None:
        with self._mutex:
            before = self._marks.get((queue_id, name))
            if before is None or value > before:
                self._marks[(queue_id, name)] = value
            return before

    def release_lock(self, name: str, owner: str) -> None:
        with self._mutex:
            if self._locks.get(name, ("",))[0] == owner:
                del self._locks[name]
