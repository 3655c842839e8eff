"""RedisStore's companions (``companions``): every key in the queue's hash slot
(``<prefix>:{<queue id>}:...``), beside the queue's own keys, so a Redis Cluster keeps a
queue's state on one node. Steps that must not be split are one script each."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from .companions import Claims, Counters, Leases, Presence

__all__ = ["RedisClaims", "RedisCounters", "RedisLeases", "RedisPresence", "presence_key"]


# KEYS: connections hash, last-seen hash. ARGV: identity, now. At zero the identity's count
# goes and its last-seen becomes now: the moment it was last there.
_DISCONNECT = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return n
"""


# KEYS: connections hash, last-seen hash. ARGV: since, then a JSON array of identities.
# each() visits every identity with (live, last seen), reading both hashes in slices.
_SCAN = """
local ids, since, out = cjson.decode(ARGV[2]), tonumber(ARGV[1]), {}
local function each(visit)
  for i = 1, #ids, 4000 do
    local last = math.min(i + 3999, #ids)
    local counts = redis.call('HMGET', KEYS[1], unpack(ids, i, last))
    local seen = redis.call('HMGET', KEYS[2], unpack(ids, i, last))
    for j = 1, last - i + 1 do
      local live = counts[j] and tonumber(counts[j]) > 0 and seen[j] and tonumber(seen[j]) >= since
      visit(live, seen[j])
    end
  end
end
"""

# One string of '1' (live) and '0' per identity: a tick asking about 1,000 admitted people
# sends one argument and reads back 1,000 bytes, not 2,000 reply elements.
_CONNECTED = (
    _SCAN
    + """
each(function(live) out[#out + 1] = live and '1' or '0' end)
return table.concat(out)
"""
)

# A JSON array: '' for a live identity, else its last-seen time ('-' never seen).
_AWAY = (
    _SCAN
    + """
each(function(live, seen) out[#out + 1] = live and '' or (seen or '-') end)
if #out == 0 then return '[]' end
return cjson.encode(out)
"""
)


#: How long a queue's last-seen times outlive its last connection: longer than any pass idle
#: grace a site would set (after that, the grace counts from the admission).
SEEN_TTL = 86_400


def presence_key(prefix: str, queue_id: str) -> str:
    """The hash of a queue's open connections by identity (the join script reads it too)."""
    return f"{prefix}:{{{queue_id}}}:presence"


class RedisPresence(Presence):
    """Two hashes per queue, in the queue's hash slot: identity -> open connections, and
    identity -> last seen (kept after the last connection closes: when it went). Both expire
    when nobody connects or refreshes for a while (the last-seen hash after a day)."""

    def __init__(self, client: Any, prefix: str, timeout: Callable[[], float]) -> None:
        self.client = client
        self.prefix = prefix
        self._timeout = timeout
        self._disconnect = client.register_script(_DISCONNECT)
        self._connected = client.register_script(_CONNECTED)
        self._away = client.register_script(_AWAY)

    def _keys(self, queue_id: str) -> tuple[str, str]:
        return (presence_key(self.prefix, queue_id), f"{self.prefix}:{{{queue_id}}}:seen_at")

    def _ttl(self) -> int:
        return max(60, int(self._timeout() * 10))

    def connect_many(self, queue_id: str, identities: Sequence[str], now: float) -> None:
        if not identities:
            return
        count, seen = self._keys(queue_id)
        pipe = self.client.pipeline(transaction=False)
        for identity in identities:  # each connection counts, two tabs of one person too
            pipe.hincrby(count, identity, 1)
        pipe.hset(seen, mapping=dict.fromkeys(identities, repr(now)))
        pipe.expire(count, self._ttl())
        pipe.expire(seen, SEEN_TTL)
        pipe.execute()

    def refresh_many(self, queue_id: str, identities: Sequence[str], now: float) -> None:
        if not identities:
            return
        count, seen = self._keys(queue_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(seen, mapping=dict.fromkeys(identities, repr(now)))
        pipe.expire(seen, SEEN_TTL)
        pipe.expire(count, self._ttl())
        pipe.execute()

    def disconnect(self, queue_id: str, identity: str, now: float) -> None:
        self._disconnect(keys=list(self._keys(queue_id)), args=[identity, repr(now)])

    def away(
        self, queue_id: str, identities: Sequence[str], since: float
    ) -> dict[str, float | None]:
        if not identities:
            return {}
        flags = json.loads(
            self._away(
                keys=list(self._keys(queue_id)),
                args=[repr(float(since)), json.dumps(list(identities), ensure_ascii=False)],
            )
        )
        return {
            identity: (None if flag == "-" else float(flag))
            for identity, flag in zip(identities, flags, strict=True)
            if flag != ""
        }

    def connected(self, queue_id: str, identities: Sequence[str], since: float) -> set[str]:
        if not identities:
            return set()
        flags = self._connected(
            keys=list(self._keys(queue_id)),
            args=[repr(float(since)), json.dumps(list(identities), ensure_ascii=False)],
        )
        flags = flags.decode() if isinstance(flags, bytes) else str(flags)
        return {identity for identity, flag in zip(identities, flags, strict=True) if flag == "1"}


# KEYS: lock, fence. ARGV: owner, ttl ms, fence ttl ms. Returns the new token, or 0 when
# another holds it. The fence outlives any lease by far (a day): a queue nobody ticks, or
# one deleted while a tick was under way, leaves no key behind for good, and a stale tick
# is refused by the lock's owner check before its token is even compared.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local token = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return token
"""
#: How long a queue's fencing token is kept after its last lease.
FENCE_TTL = 24 * 3600.0
# KEYS: lock, fence. ARGV: owner, token, ttl ms. 1 when still ours and still the newest.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLeases(Leases):
    """Leases in Redis, in the queue's hash slot; each step is one script, so taking the
    lock and drawing the token cannot be split by another worker."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def _keys(self, queue_id: str) -> list[str]:
        return [f"{self.prefix}:{{{queue_id}}}:ticklock", f"{self.prefix}:{{{queue_id}}}:tickfence"]

    def acquire(self, queue_id: str, owner: str, ttl: float) -> int | None:
        args = [owner, _ms(ttl), _ms(FENCE_TTL)]
        token = int(self._acquire(keys=self._keys(queue_id), args=args))
        return token or None

    def renew(self, queue_id: str, owner: str, token: int, ttl: float) -> bool:
        return bool(self._renew(keys=self._keys(queue_id), args=[owner, str(token), _ms(ttl)]))

    def release(self, queue_id: str, owner: str) -> None:
        self._release(keys=self._keys(queue_id), args=[owner])

    def token(self, queue_id: str) -> int:
        return int(self.client.get(self._keys(queue_id)[1]) or 0)


class RedisCounters(Counters):
    """One hash per queue, in the queue's hash slot: counter name -> value."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, queue_id: str) -> str:
        return f"{self.prefix}:{{{queue_id}}}:counters"

    def add(self, queue_id: str, name: str, n: int) -> None:
        self.client.hincrby(self._key(queue_id), name, n)

    def read(self, queue_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        pipe = self.client.pipeline(transaction=False)
        for queue_id in queue_ids:
            pipe.hgetall(self._key(queue_id))
        return {
            q: {k: int(v) for k, v in values.items()}
            for q, values in zip(queue_ids, pipe.execute(), strict=True)
        }


class RedisClaims(Claims):
    """A key per claim, in the queue's hash slot, that expires with it."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, queue_id: str, channel: str, seq: int) -> str:
        return f"{self.prefix}:{{{queue_id}}}:notified:{channel}:{seq}"

    def claim(self, queue_id: str, channel: str, seqs: Sequence[int], ttl: float) -> set[int]:
        pipe = self.client.pipeline(transaction=False)
        for seq in seqs:
            pipe.set(self._key(queue_id, channel, seq), "1", nx=True, px=_ms(ttl))
        return {seq for seq, ok in zip(seqs, pipe.execute(), strict=True) if ok}

    def unclaim(self, queue_id: str, channel: str, seqs: Sequence[int]) -> None:
        if seqs:
            self.client.delete(*[self._key(queue_id, channel, seq) for seq in seqs])


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
