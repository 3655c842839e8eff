"""RedisStore: the store contract on Redis, one Lua script per operation, for production.

A queue's keys share one hash tag (``tq:{<queue id>}:...``), so it lives in one Cluster slot.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cached_property, wraps
from importlib import resources
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

from ..core import (
    BURST_SECONDS,
    FLOW_SAMPLE_EVERY,
    FLOW_WINDOW,
    LIMIT_SLACK,
    PRIORITY_BAND,
    EntryState,
    PassLimitReached,
    QueueClosed,
    QueueFull,
    QueueMode,
    QueueState,
    QueueUnavailable,
    StoreUnreachable,
    TicketQueueError,
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
    _unless_unavailable,
    departed_total_after_loss,
)
from .redis_broadcast import RedisBroadcast, live_channel
from .redis_cluster import cluster_client
from .redis_companions import (
    RedisClaims,
    RedisCounters,
    RedisLeases,
    RedisPresence,
    presence_key,
)

if TYPE_CHECKING:
    from redis.commands.core import Script

__all__ = ["RedisStore"]

#: Same as MemoryStore: enough samples for the ETA's measuring window.
FLOW_SAMPLES_KEPT = 64
#: The most entries one script call changes where the work is split (rebuild, close, revoke,
#: shuffle, ack): about 10 ms of Redis time on a small server, so no one waits long behind it.
BATCH = 1_000
#: Acknowledging is a lookup and two bulk deletions per batch, cheap enough for larger ones:
#: a tick's whole journal (a 1,000-admission tick and its joins) goes in one call.
ACK_BATCH = 5 * BATCH
#: Read-only pages (the shuffle's and abandonment's listings) are cheaper per entry.
PAGE = 10_000
#: Abandonment usually finds a handful of entries; past this many it goes in batches.
ABANDON_BATCH = BATCH
#: Staged rebuild keys expire on their own if the loading process dies half way.
STAGING_TTL = 3600

#: Key names of one queue, in the order every per-queue script receives them in KEYS.
QUEUE_KEYS = (
    "meta",  # hash: state, mode, cap, rate, max, win, grace, seq, total, dep, tok, tat, jv, ep,
    # hn, hs, as (how long passes are held), stock
    "line",  # zset: waiting member -> order
    "seen",  # zset: waiting member -> last seen
    "who",  # hash: live member -> identity
    "ids",  # hash: identity -> live member
    "active",  # zset: admitted member -> pass expiry
    "adm",  # hash: admitted member -> admitted at
    "jrec",  # hash: member -> latest journal record
    "jver",  # zset: member -> version of that record (journal order, oldest first)
    "gone",  # list: orders of departures not yet drained (the last is number meta.dep)
    "flow",  # list: "time|admitted_total" samples
    "passes",  # hash: identity -> passes it had (passes_per_identity)
)
#: The keys ``rebuild`` stages before swapping them in, in the order rebuild.lua expects.
STAGED_KEYS = ("line", "seen", "who", "ids", "active", "adm", "passes")

#: Scripts that count request limits: _limits.lua goes before them.
COUNTS_LIMITS = frozenset({"hit_limits", "join"})

#: Scripts that do not work on a queue's full key set and so go without the shared prelude.
STANDALONE = frozenset(
    {
        "lock_acquire",
        "lock_release",
        "rebuild_load",
        "line_page",
        "shuffle_write",
        "hit_limits",
        "claim_use",
        "advance_mark",
    }
)

_ERRORS: dict[str, Callable[[], Exception]] = {
    "closed": QueueClosed,
    "full": QueueFull,
    "pass_limit": PassLimitReached,
}

_T = TypeVar("_T")


def _member(seq: int) -> str:
    # Zero-padded so Redis's tie order (members compared as strings) is seq order, as in
    # MemoryStore's (order, seq) line; 12 digits still fit jemalloc's 16-byte class.
    return f"{seq:012d}"


def _num(value: float) -> str:
    """A float for Lua or Redis, written with every digit (repr round-trips exactly)."""
    return repr(float(value))


def _opt(value: int | None) -> str:
    return "" if value is None else str(int(value))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _config_args(config: QueueConfig) -> list[str]:
    return [
        QueueState(config.state).value,
        QueueMode(config.mode).value,
        _opt(config.capacity),
        _opt(config.rate_per_minute),
        _opt(config.max_size),
        _num(config.purchase_window),
    ]


def _grace(config: QueueConfig) -> str:
    return "" if config.disconnect_grace is None else _num(config.disconnect_grace)


def _list(payload: Any) -> list[str]:
    """A long list the script sent back as one JSON string."""
    result: list[str] = json.loads(payload)
    return result


def _json(values: list[str]) -> str:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


#: EntryState by value, without the Enum call's lookup machinery (a journal read parses
#: thousands of records).
_STATES = {state.value: state for state in EntryState}


def _changes(payload: Any) -> list[Change]:
    """The flat (member, token, record) list a script sent back, as Changes. A record is
    state|order|at|admitted_at|expires_at|admission_number|identity (empty fields are None)."""
    flat = _list(payload)
    changes = []
    for i in range(0, len(flat), 3):
        state, order, at, adm, exp, number, identity = flat[i + 2].split("|", 6)
        changes.append(
            Change(
                int(flat[i]),
                identity,
                _STATES[state],
                float(order),
                float(at),
                float(adm) if adm else None,
                float(exp) if exp else None,
                int(number) if number else None,
                flat[i + 1],
            )
        )
    return changes


#: The states by value: a dict lookup, where calling the enum costs a socket process ~0.3 us a
#: placement, hundreds at a time (a batch of connects or resyncs).
_ENTRY_STATES = {state.value: state for state in EntryState}
_QUEUE_STATES = {state.value: state for state in QueueState}


def _placement(packed: Any) -> Placement:
    """member|state|position|order|admitted_at|expires_at|created|number|identity"""
    member, state, position, order, adm, exp, created, number, identity = _text(packed).split(
        "|", 8
    )
    return Placement(
        seq=int(member),
        identity=identity,
        state=_ENTRY_STATES[state],
        position=int(position),
        order=float(order),
        admitted_at=float(adm) if adm else None,
        expires_at=float(exp) if exp else None,
        created=created == "1",
        admission_number=int(number) if number else None,
    )


def _counts(packed: Any) -> Counts:
    """state|waiting|active|admitted_total|departed_total|joined_total|passes_ended|
    hold_exposure|stock|ended_hold[|time|admitted_total]..."""
    fields = _text(packed).split("|")
    flow = fields[10:]
    return Counts(
        state=_QUEUE_STATES[fields[0]],
        waiting=int(fields[1]),
        active=int(fields[2]),
        admitted_total=int(fields[3]),
        flow=tuple((float(flow[i]), int(flow[i + 1])) for i in range(0, len(flow), 2)),
        departed_total=int(fields[4]),
        joined_total=int(fields[5]),
        passes_ended=int(fields[6]),
        hold_exposure=float(fields[7]),
        stock=int(fields[8]) if fields[8] else None,
        ended_hold=float(fields[9]),
    )


def _presence_timeout() -> float:
    from ..conf import queue_settings

    return float(queue_settings.PRESENCE_TIMEOUT)


class RedisStore(QueueStore):
    """The store on one Redis (or one Cluster slot per queue); safe across processes."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "tq",
        announce_joins: bool = False,
        cluster: bool = False,
    ) -> None:
        import redis as redis_lib

        #: On a Redis Cluster (redis-py's RedisCluster): every key and channel of a queue is
        #: in its hash slot, so each script runs on the one node that holds the queue.
        self.cluster = cluster
        if cluster:
            self.client = cluster_client(url, decode_responses=True)
        else:
            self.client = redis_lib.Redis.from_url(url, decode_responses=True)
        self.prefix = prefix
        #: Publish a new waiting entry's ``joined`` message from the join script itself (when
        #: the live broadcast runs over this Redis): one round trip less on every new join.
        #: Only when another connection of the identity is open (``presence``): every socket
        #: process of the queue hears each message, and nobody else needs it.
        self.announce_joins = announce_joins
        # Each queue's keys as its scripts receive them, encoded once: redis-py would encode
        # all eleven on every call (half the client's cost of packing a join).
        self._script_keys: dict[str, tuple[bytes, ...]] = {}
        self.presence = RedisPresence(self.client, prefix, _presence_timeout)
        self.leases = RedisLeases(self.client, prefix)
        self.counters = RedisCounters(self.client, prefix)
        self.claims = RedisClaims(self.client, prefix)
        self.broadcast = RedisBroadcast(self.client, url, prefix, cluster)

    @property
    def outage_errors(self) -> tuple[type[BaseException], ...]:
        import redis as redis_lib

        return (redis_lib.RedisError,)

    @classmethod
    def from_settings(cls) -> RedisStore:
        from ..conf import queue_settings  # lazily: importing this module needs no Django

        return cls(
            url=queue_settings.REDIS_URL,
            prefix=queue_settings.KEY_PREFIX,
            announce_joins=queue_settings.LIVE_BROADCAST != "local",
            cluster=bool(queue_settings.REDIS_CLUSTER),
        )

    def disconnect(self) -> None:
        self.client.close()

    # -- plumbing -----------------------------------------------------------------------
    @cached_property
    def _scripts(self) -> dict[str, Script]:
        lua = resources.files(__package__ or "ticketqueue.store").joinpath("lua")
        # One source of truth for the constants the scripts share with core.
        header = (
            f"local BURST_SECONDS = {BURST_SECONDS!r}\n"
            f"local FLOW_SAMPLE_EVERY = {FLOW_SAMPLE_EVERY!r}\n"
            f"local FLOW_WINDOW = {FLOW_WINDOW!r}\n"
            f"local FLOW_SAMPLES_KEPT = {FLOW_SAMPLES_KEPT}\n"
            f"local LIMIT_SLACK = {LIMIT_SLACK!r}\n"
            f"local STALE_SKIP_LIMIT = {STALE_SKIP_LIMIT}\n"
            f"local PRIORITY_BAND = {PRIORITY_BAND}\n"
            f"local QUEUE_KEY_COUNT = {len(QUEUE_KEYS)}\n"
            # A cluster's pub/sub is sharded: the queue's channel lives in the queue's slot.
            f"local PUBLISH = '{'SPUBLISH' if self.cluster else 'PUBLISH'}'\n"
        )
        common = header + lua.joinpath("_common.lua").read_text(encoding="utf-8")
        counting = lua.joinpath("_limits.lua").read_text(encoding="utf-8")
        scripts = {}
        for entry in lua.iterdir():
            name = entry.name
            if not name.endswith(".lua") or name.startswith("_"):
                continue
            body = entry.read_text(encoding="utf-8")
            source = header if name[:-4] in STANDALONE else common + "\n"
            if name[:-4] in COUNTS_LIMITS:
                source += counting + "\n"
            source += body
            # register_script runs EVALSHA and loads the script again after a NOSCRIPT.
            scripts[name[:-4]] = self.client.register_script(source)
        return scripts

    def _keys(self, queue_id: str) -> list[str]:
        return [f"{self.prefix}:{{{queue_id}}}:{name}" for name in QUEUE_KEYS]

    def _key(self, queue_id: str, name: str) -> str:
        return f"{self.prefix}:{{{queue_id}}}:{name}"

    def _run(
        self, name: str, queue_id: str, args: Sequence[Any] = (), keys: Sequence[str] = ()
    ) -> list[Any]:
        queue_keys = self._script_keys.get(queue_id)
        if queue_keys is None:
            if len(self._script_keys) >= 10_000:  # a long-lived process saw many queues
                self._script_keys.clear()
            queue_keys = tuple(key.encode() for key in self._keys(queue_id))
            self._script_keys[queue_id] = queue_keys
        reply = self._scripts[name](keys=[*queue_keys, *keys], args=list(args))
        status = _text(reply[0])
        if status == "unavailable":
            raise QueueUnavailable(f"Queue {queue_id} is not loaded in the store.")
        if status in _ERRORS:
            raise _ERRORS[status]()
        if status == "limited":
            raise _Limited(_limit_results(reply[1:]))
        return list(reply[1:])

    def _pipelined(self, queue_id: str, fill: Callable[[Any], None]) -> list[Any]:
        """The commands ``fill`` adds to a pipeline (not a transaction), in one round trip.

        On a cluster the pipeline goes straight to the node holding the queue's slot: redis-py's
        cluster pipeline refuses EVALSHA. A MOVED reply (the slot moved: nothing ran) refreshes
        the slot map and sends the pipeline once more; a lost connection refreshes it for the
        next call and is raised.
        """
        if not self.cluster:
            pipe = self.client.pipeline(transaction=False)
            fill(pipe)
            return list(pipe.execute())
        import redis as redis_lib

        for attempt in (1, 2):
            node = self.client.get_node_from_key(self._key(queue_id, "meta"))
            pipe = self.client.get_redis_connection(node).pipeline(transaction=False)
            fill(pipe)
            try:
                return list(pipe.execute())
            except redis_lib.exceptions.AskError:  # MOVED or ASK
                if attempt == 2:
                    raise
            except (redis_lib.ConnectionError, redis_lib.TimeoutError):
                self.client.nodes_manager.initialize()
                raise
            self.client.nodes_manager.initialize()
        raise AssertionError("unreachable")

    # -- set-up -------------------------------------------------------------------------
    def configure(self, queue_id: str, config: QueueConfig, now: float) -> None:
        args = [
            *_config_args(config),
            _num(now),
            secrets.token_hex(4),
            _grace(config),
            _opt(config.passes_per_identity),
        ]
        self._run("configure", queue_id, args)

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
        # Load into staging keys a batch per script call (no call runs long), then swap them
        # in with one script: readers see the old queue or the new one, never half of it.
        epoch = secrets.token_hex(4)
        staged = {name: self._key(queue_id, f"rebuild:{epoch}:{name}") for name in STAGED_KEYS}
        staged_keys = [staged[name] for name in STAGED_KEYS]
        load = self._scripts["rebuild_load"]
        for batch in _chunks(waiting, BATCH):
            records = [
                x
                for w in batch
                for x in (_member(w.seq), _num(w.order), _num(w.seen_at), w.identity)
            ]
            load(keys=staged_keys, args=["waiting", STAGING_TTL, _json(records)])
        admitted_sum = 0.0  # the active passes' admission times: their hold so far, at any now
        for abatch in _chunks(active, BATCH):
            admitted_sum += sum(a.admitted_at for a in abatch)
            records = [
                x
                for a in abatch
                for x in (
                    _member(a.seq),
                    _num(a.expires_at),
                    f"{_num(a.admitted_at)}|{int(a.admission_number)}",
                    a.identity,
                )
            ]
            load(keys=staged_keys, args=["active", STAGING_TTL, _json(records)])
        for pbatch in _chunks((passes_given or {}).items(), BATCH):
            records = [x for identity, n in pbatch for x in (identity, str(int(n)))]
            load(keys=staged_keys, args=["passes", STAGING_TTL, _json(records)])
        args = [
            *_config_args(config),
            _num(now),
            epoch,
            str(int(next_seq)),
            str(int(admitted_total)),
            str(departed_total_after_loss(now)),
            _grace(config),
            _num(admitted_sum),
            _opt(config.passes_per_identity),
            "" if passes_given is None else "1",
        ]
        self._run("rebuild", queue_id, args, keys=staged_keys)

    def delete(self, queue_id: str) -> None:
        # The queue's own keys, then whatever else lives under its hash tag: the tick's lease,
        # presence, counters, notification claims, a rebuild's staging keys.
        self.unload(queue_id)
        pattern = re.sub(r"([\\*?\[\]])", r"\\\1", self._key(queue_id, "")) + "*"
        batch: list[str] = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self.client.unlink(*batch)
                batch = []
        if batch:
            self.client.unlink(*batch)

    def unload(self, queue_id: str) -> None:
        self.client.unlink(*self._keys(queue_id))

    def is_loaded(self, queue_id: str) -> bool:
        return bool(self.client.exists(self._key(queue_id, "meta")))

    # -- people -------------------------------------------------------------------------
    def join(self, queue_id: str, identity: str, now: float, priority: int = 0) -> Joined:
        args = self._join_args(queue_id, identity, now, priority)
        return _joined(self._run("join", queue_id, args, keys=[self._presence_key(queue_id)]))

    def _join_args(
        self, queue_id: str, identity: str, now: float, priority: int = 0, own: int = 0
    ) -> list[str]:
        """The join script's ARGV (join.lua), limits aside. ``own``: the identity's open
        connections that are the joiner's own (its socket), which need no ``joined`` message."""
        channel = live_channel(self.prefix, queue_id) if self.announce_joins else ""
        return [identity, _num(now), channel, str(priority), str(own)]

    def _presence_key(self, queue_id: str) -> str:
        return presence_key(self.prefix, queue_id)

    def join_within_limits(
        self,
        queue_id: str,
        identity: str,
        now: float,
        hits: Sequence[LimitHit | tuple[str, int, float]],
        limits_now: float,
    ) -> Joined | list[LimitResult]:
        if not hits:
            return self.join(queue_id, identity, now)
        limit_keys, limit_args = self._limit_call(queue_id, hits, limits_now)
        args = [*self._join_args(queue_id, identity, now), *limit_args]
        keys = [self._presence_key(queue_id), *limit_keys]
        try:
            return _joined(self._run("join", queue_id, args, keys=keys))
        except _Limited as refused:
            return refused.results

    def join_many(
        self, queue_id: str, identities: Sequence[str], now: float
    ) -> list[Joined | TicketQueueError]:
        # A socket process's batch: each identity's joining socket is one of its open
        # connections already, so only another one (a second tab) makes the script announce.
        if not identities:
            return []
        keys = [*self._keys(queue_id), self._presence_key(queue_id)]
        script = self._scripts["join"]

        def fill(pipe: Any) -> None:
            for identity in identities:
                args = self._join_args(queue_id, identity, now, own=1)
                script(keys=keys, args=args, client=pipe)

        results: list[Joined | TicketQueueError] = []
        for reply in self._pipelined(queue_id, fill):
            status = _text(reply[0])
            if status == "unavailable":
                results.append(QueueUnavailable(f"Queue {queue_id} is not loaded in the store."))
            elif status in _ERRORS:
                results.append(_ERRORS[status]())
            else:
                results.append(_joined(reply[1:]))
        return _unless_unavailable(queue_id, results)

    def locate(self, queue_id: str, identity: str, now: float) -> Located:
        return self.locate_many(queue_id, [identity], now)[0]

    def locate_many(self, queue_id: str, identities: Sequence[str], now: float) -> list[Located]:
        # One script per BATCH identities, the counts read once for all of them (a socket
        # process's resyncs and connects come in hundreds).
        located = []
        for batch in _chunks(identities, BATCH):
            counts, *placements = self._run("locate", queue_id, [_num(now), *batch])
            shared = _counts(counts)
            located += [Located(_placement(p) if p else None, shared) for p in placements]
        return located

    def touch(self, queue_id: str, identity: str, now: float) -> bool:
        return self.touch_many(queue_id, [identity], now)[0]

    def touch_many(self, queue_id: str, identities: Sequence[str], now: float) -> list[bool]:
        # One script per BATCH identities: a socket process's heartbeats of the last moment.
        seen: list[bool] = []
        for batch in _chunks(identities, BATCH):
            seen += [bool(live) for live in self._run("touch", queue_id, [_num(now), *batch])]
        return seen

    def bind_device(self, queue_id: str, identity: str, device: str, now: float) -> DeviceBinding:
        keys = [self._key(queue_id, "dev")]
        previous, held = self._run("bind_device", queue_id, [identity, device], keys)
        return DeviceBinding(_text(previous) or None, bool(held))

    def devices(self, queue_id: str, identities: Sequence[str]) -> dict[str, str]:
        if not identities:
            return {}
        found = self.client.hmget(self._key(queue_id, "dev"), list(identities))
        return {i: _text(d) for i, d in zip(identities, found, strict=True) if d is not None}

    def leave(self, queue_id: str, identity: str, now: float) -> Change | None:
        (flat,) = self._run("leave", queue_id, [identity, _num(now)])
        changes = _changes(flat)
        return changes[0] if changes else None

    def abandon(self, queue_id: str, seen_before: float, now: float) -> list[Change]:
        args = [_num(now), _num(seen_before), str(ABANDON_BATCH)]
        (reply,) = self._run("abandon", queue_id, args)
        if _text(reply) != "more":  # 'more': too many stale entries for one call
            return _changes(reply)
        # Many stale entries: list them (read-only pages), then end them in seq order in
        # batches, each batch one script that checks every entry is still stale.
        stale: set[str] = set()
        seen_key, offset = self._key(queue_id, "seen"), 0
        while page := self.client.zrangebyscore(
            seen_key, "-inf", f"({_num(seen_before)}", start=offset, num=PAGE
        ):
            stale.update(_text(m) for m in page)
            offset += len(page)
        changes: list[Change] = []
        for batch in _chunks(sorted(stale), ABANDON_BATCH):
            (flat,) = self._run("abandon", queue_id, [*args, *batch])
            changes.extend(_changes(flat))
        return changes

    # -- outflow ------------------------------------------------------------------------
    def admit(
        self, queue_id: str, now: float, *, limit: int | None = None, use_rate: bool = True
    ) -> list[Admission]:
        args = [_num(now), _opt(limit), "1" if use_rate else "0"]
        (payload,) = self._run("admit", queue_id, args)
        flat = _list(payload)
        if not flat:
            return []
        # Everyone admitted by one call shares the expiry; their numbers run on in line order.
        expires_at, first = float(flat[0]), int(flat[1])
        return [
            Admission(int(flat[i]), flat[i + 1], now, expires_at, first + (i - 2) // 2)
            for i in range(2, len(flat), 2)
        ]

    def expire(self, queue_id: str, now: float) -> list[Change]:
        (flat,) = self._run("expire", queue_id, [_num(now)])
        return _changes(flat)

    def release(self, queue_id: str, seq: int, now: float) -> Change | None:
        (flat,) = self._run("release", queue_id, [_member(seq), _num(now)])
        changes = _changes(flat)
        return changes[0] if changes else None

    def revoke(self, queue_id: str, seqs: Sequence[int], now: float) -> list[Change]:
        changes: list[Change] = []
        # One script per batch keeps a huge revoke from blocking Redis; a short list is atomic.
        for batch in _chunks(seqs, BATCH) if seqs else [[]]:
            (flat,) = self._run("revoke", queue_id, [_num(now), *map(_member, batch)])
            changes.extend(_changes(flat))
        return changes

    def end_idle(self, queue_id: str, seqs: Sequence[int], now: float) -> list[Change]:
        changes: list[Change] = []
        for batch in _chunks(seqs, BATCH):
            (flat,) = self._run("end_idle", queue_id, [_num(now), *map(_member, batch)])
            changes.extend(_changes(flat))
        return changes

    def close(self, queue_id: str, now: float) -> int:
        # The first call closes the queue atomically; the line is then cleared in chunks.
        count, remaining, epoch = self._run("close", queue_id, [str(BATCH), ""])
        while int(remaining):
            _, remaining, _ = self._run("close", queue_id, [str(BATCH), _text(epoch)])
        return int(count)

    def set_stock(self, queue_id: str, remaining: int | None) -> None:
        self._run("stock", queue_id, ["" if remaining is None else str(max(0, int(remaining)))])

    def shuffle_prequeue(self, queue_id: str, seed: int) -> dict[int, float]:
        if not self.is_loaded(queue_id):
            raise QueueUnavailable(f"Queue {queue_id} is not loaded in the store.")
        line = self._key(queue_id, "line")
        ranked = [(int(m), order) for m, order in self._scan_line(line)]
        orders = shuffle_order(ranked, seed)
        write = self._scripts["shuffle_write"]
        for batch in _chunks(orders.items(), BATCH):
            records = [x for seq, order in batch for x in (_member(seq), _num(order))]
            write(keys=[line], args=[_json(records)])
        return orders

    def _scan_line(self, line: str) -> Iterator[tuple[str, float]]:
        """The whole line in order, in pages by score, so no single call is long."""
        low, at_low = "-inf", 0  # at_low: entries already read with score == low
        page_script = self._scripts["line_page"]
        while page := _list(page_script(keys=[line], args=[low, at_low, PAGE])):
            scores = [float(x) for x in page[1::2]]
            yield from zip(page[0::2], scores, strict=True)
            last = scores[-1]
            same = sum(score == last for score in scores)
            if _num(last) == low:
                at_low += same
            else:
                low, at_low = _num(last), same

    # -- reading ------------------------------------------------------------------------
    def position(self, queue_id: str, seq: int) -> int | None:
        (position,) = self._run("position", queue_id, [_member(seq)])
        return int(position) or None

    def pass_active(self, queue_id: str, seq: int, now: float) -> bool:
        expires_at = self.client.zscore(self._key(queue_id, "active"), _member(seq))
        return expires_at is not None and float(expires_at) > now

    def counts(self, queue_id: str, now: float) -> Counts:
        (packed,) = self._run("counts", queue_id, [_num(now)])
        return _counts(packed)

    def head(
        self, queue_id: str, count: int, after: float | None = None, limit: int = 10_000
    ) -> list[WaitingRecord]:
        if count <= 0 or limit <= 0:
            return []
        args = [str(int(count)), "" if after is None else _num(after), str(int(limit))]
        (flat,) = self._run("head", queue_id, args)
        values = _list(flat)
        return [
            WaitingRecord(int(values[i]), values[i + 2], float(values[i + 1]), float(values[i + 3]))
            for i in range(0, len(values), 4)
        ]

    def passes(
        self,
        queue_id: str,
        expires_after: float = -math.inf,
        expires_by: float = math.inf,
        limit: int = 10_000,
    ) -> list[ActiveRecord]:
        if limit <= 0:
            return []
        (flat,) = self._run(
            "passes", queue_id, [_num(expires_after), _num(expires_by), str(int(limit))]
        )
        values = _list(flat)
        return [
            ActiveRecord(
                int(values[i]),
                values[i + 2],
                float(values[i + 3]),
                float(values[i + 1]),
                int(values[i + 4]),
            )
            for i in range(0, len(values), 5)
        ]

    def dump(self, queue_id: str) -> StoreDump:
        keys = dict(zip(QUEUE_KEYS, self._keys(queue_id), strict=True))
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(keys["meta"])
        pipe.zrange(keys["line"], 0, -1, withscores=True)
        pipe.zrange(keys["seen"], 0, -1, withscores=True)
        pipe.hgetall(keys["who"])
        pipe.zrange(keys["active"], 0, -1, withscores=True)
        pipe.hgetall(keys["adm"])
        raw_meta, line, seen, raw_who, active, raw_adm = pipe.execute()
        if not raw_meta:
            raise QueueUnavailable(f"Queue {queue_id} is not loaded in the store.")
        meta = {_text(k): _text(v) for k, v in raw_meta.items()}
        who = {_text(k): _text(v) for k, v in raw_who.items()}
        adm = {_text(k): _text(v).split("|") for k, v in raw_adm.items()}
        seen_at = {_text(m): s for m, s in seen}
        config = QueueConfig(
            state=QueueState(meta["state"]),
            mode=QueueMode(meta["mode"]),
            capacity=int(meta["cap"]) if meta["cap"] else None,
            rate_per_minute=int(meta["rate"]) if meta["rate"] else None,
            max_size=int(meta["max"]) if meta["max"] else None,
            purchase_window=float(meta["win"]),
            disconnect_grace=float(meta["grace"]) if meta.get("grace") else None,
            passes_per_identity=int(meta["ppi"]) if meta.get("ppi") else None,
        )
        waiting = [
            WaitingRecord(int(m), who[m], order, seen_at[m])
            for m, order in ((_text(m), order) for m, order in line)
        ]
        actives = [
            ActiveRecord(int(m), who[m], float(adm[m][0]), exp, int(adm[m][1]))
            for m, exp in sorted((_text(m), exp) for m, exp in active)
        ]
        return StoreDump(config, int(meta["seq"]), int(meta["total"]), waiting, actives)

    # -- journal and departures -------------------------------------------------------
    def journal(self, queue_id: str, limit: int = 10_000) -> list[Change]:
        (flat,) = self._run("journal", queue_id, [str(max(0, int(limit)))])
        if limit < 0:
            raise ValueError("limit must be zero or more")  # as itertools.islice in MemoryStore
        return _changes(flat)

    def ack(self, queue_id: str, changes: Iterable[Change]) -> None:
        for batch in _chunks(changes, ACK_BATCH):
            pairs = [x for c in batch for x in (_member(c.seq), c.token)]
            self._run("ack", queue_id, [_json(pairs)])

    def drain_departures(self, queue_id: str) -> Departures:
        gone, departed_total = self._run("drain", queue_id)
        return Departures(tuple(float(order) for order in _list(gone)), int(departed_total))

    # -- request limits -------------------------------------------------------------------
    def _limit_key(self, queue_id: str, name: str) -> str:
        # Under the queue's hash tag (the first {...} of the key, whatever the name holds), so
        # one script may touch several limits in Cluster; deleting the queue deletes them.
        return self._key(queue_id, f"limit:{name}")

    def hit_limits(
        self, queue_id: str, hits: Sequence[LimitHit | tuple[str, int, float]], now: float
    ) -> list[LimitResult]:
        return self.hit_limits_many(queue_id, [hits], now)[0]

    def hit_limits_many(
        self,
        queue_id: str,
        requests: Sequence[Sequence[LimitHit | tuple[str, int, float]]],
        now: float,
    ) -> list[list[LimitResult]]:
        # One script for the batch (a socket process's connects or joins of the last moment):
        # each request still counted all or nothing, in order.
        keys: list[str] = []
        args = [_num(now)]
        for hits in requests:
            if hits:
                request_keys, (_, *limits) = self._limit_call(queue_id, hits, now)
                keys += request_keys
                args += [str(len(hits)), *limits]
        if not keys:
            return [[] for _ in requests]
        replies = iter(self._scripts["hit_limits"](keys=keys, args=args))
        return [_limit_results(next(replies)) if hits else [] for hits in requests]

    def _limit_call(
        self, queue_id: str, hits: Sequence[LimitHit | tuple[str, int, float]], now: float
    ) -> tuple[list[str], list[str]]:
        keys, args = [], [_num(now)]
        for hit in hits:
            name, limit, period = hit
            keys.append(self._limit_key(queue_id, name))
            args += [str(int(limit)), _num(period)]
        return keys, args

    def claim_use(self, queue_id: str, name: str, uses: int, ttl: float, now: float) -> bool:
        ttl_ms = max(1, math.ceil(ttl * 1000))
        key = self._key(queue_id, f"use:{name}")
        return bool(self._scripts["claim_use"](keys=[key], args=[str(uses), str(ttl_ms)]))

    def marks(self, queue_id: str) -> dict[str, float]:
        raw = self.client.hgetall(self._key(queue_id, "marks"))
        return {_text(name): float(value) for name, value in raw.items()}

    def advance_mark(self, queue_id: str, name: str, value: float) -> float | None:
        script = self._scripts["advance_mark"]
        before = _text(script(keys=[self._key(queue_id, "marks")], args=[name, _num(value)]))
        return float(before) if before else None

    # -- locking ------------------------------------------------------------------------
    def _lock_key(self, name: str) -> str:
        return f"{self.prefix}:lock:{name}"

    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        ttl_ms = max(1, math.ceil(ttl * 1000))
        script = self._scripts["lock_acquire"]
        return bool(script(keys=[self._lock_key(name)], args=[owner, str(ttl_ms)]))

    def release_lock(self, name: str, owner: str) -> None:
        self._scripts["lock_release"](keys=[self._lock_key(name)], args=[owner])


class _Limited(Exception):
    """A script counted request limits first and one had no room: nothing else was done."""

    def __init__(self, results: list[LimitResult]) -> None:
        super().__init__()
        self.results = results


def _limit_results(reply: Sequence[Any]) -> list[LimitResult]:
    return [
        LimitResult(True) if not wait else LimitResult(False, float(wait))
        for wait in map(_text, reply)
    ]


def _joined(reply: Sequence[Any]) -> Joined:
    """The join script's reply after its status: the counts, the placement, and whether it
    announced the new entry itself."""
    counts, placement, *announced = reply
    return Joined(_placement(placement), _counts(counts), announced=bool(announced))


def _reachable(method: Callable[..., _T]) -> Callable[..., _T]:
    """Turn redis-py's connection errors into StoreUnreachable, so callers see one typed error
    (and the services do not try to rebuild a queue from a store they cannot reach)."""
    import redis as redis_lib

    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> _T:
        try:
            return method(*args, **kwargs)
        except (redis_lib.ConnectionError, redis_lib.TimeoutError) as exc:
            raise StoreUnreachable() from exc

    return wrapper


for _name in (
    *QueueStore.__abstractmethods__,
    "unload",
    "join_many",
    "locate_many",
    "touch_many",
    "hit_limits_many",
):
    setattr(RedisStore, _name, _reachable(getattr(RedisStore, _name)))
