-- Shared prelude of every per-queue script (RedisStore prepends it, after the constants).
-- Every key of one queue comes in KEYS, in this order, so scripts stay cluster-safe.
local K_META, K_LINE, K_SEEN, K_WHO, K_IDS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_ACTIVE, K_ADM, K_JREC, K_JVER = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_GONE, K_FLOW, K_PASSES = KEYS[10], KEYS[11], KEYS[12]

local INF = math.huge
-- Lua's unpack() stack is limited (8000 slots in Redis), so bulk commands go in slices.
local SLICE = 4000

-- Numbers cross the script boundary as strings: Redis turns a Lua number into an integer reply
-- and formats number arguments with too few digits, so every float is formatted here.
local function num(s)
  if s == 'inf' then return INF end
  if s == '-inf' then return -INF end
  return tonumber(s)
end

local function fmt(x)
  if x == INF then return 'inf' end
  if x == -INF then return '-inf' end
  return string.format('%.17g', x)
end

-- Long lists go back as one JSON string: a client parses one string far faster than thousands
-- of reply elements (redis-py without hiredis spends microseconds on each). Values are strings.
local function encode(list)
  if #list == 0 then return '[]' end -- cjson would write an empty table as {}
  return cjson.encode(list)
end

local function opt(s)
  if s == false or s == nil or s == '' then return nil end
  return tonumber(s)
end

local function bulk(cmd, key, args)
  for i = 1, #args, SLICE do
    redis.call(cmd, key, unpack(args, i, math.min(i + SLICE - 1, #args)))
  end
end

-- HMGET over many fields, in slices; the values come back in the same order.
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, SLICE do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + SLICE - 1, #fields)))
    for _, v in ipairs(part) do out[#out + 1] = v end
  end
  return out
end

local function seq_member(n)
  return string.format('%012d', n)
end

-- The queue's knobs and token bucket; nil when the queue is not loaded.
local function load_meta()
  local m = redis.call('HMGET', K_META, 'state', 'mode', 'cap', 'rate', 'max', 'win', 'tok', 'tat',
    'ep', 'grace', 'ppi')
  if not m[1] then return nil end
  return {
    state = m[1], mode = m[2], cap = opt(m[3]), rate = opt(m[4]), max = opt(m[5]),
    win = num(m[6]), tok = num(m[7]), tat = num(m[8]), ep = m[9], grace = opt(m[10]),
    ppi = opt(m[11]),
  }
end

-- Token bucket: mirrors core.OutflowPolicy (bucket_size, refill, allowance) operation by operation.
local function bucket_size(q)
  if q.rate == nil then return INF end
  return math.max(1.0, q.rate / 60.0 * BURST_SECONDS)
end

local function refill(q, now)
  if q.rate == nil then
    q.tok, q.tat = INF, now
    return
  end
  local elapsed = math.max(0.0, now - q.tat)
  q.tok = math.min(bucket_size(q), q.tok + elapsed * q.rate / 60.0)
  q.tat = math.max(now, q.tat)
end

local function save_bucket(q)
  redis.call('HSET', K_META, 'tok', fmt(q.tok), 'tat', fmt(q.tat))
end

local function allowance(q, active, waiting, tokens, limit)
  local room = INF
  if q.cap ~= nil then room = math.max(0, q.cap - active) end
  if tokens ~= INF then tokens = math.floor(tokens) end
  local n = math.min(waiting, room, tokens)
  if limit ~= nil then n = math.min(n, limit) end
  if n < 0 then n = 0 end
  return n
end

-- Journal: records are buffered and written by jflush, so a batch costs a few commands.
-- Each record gets a version from the queue's counter; the epoch keeps tokens of a queue
-- that was deleted or rebuilt from acknowledging records of the new one.
local jbuf = {}

-- A record: state|order|at|admitted_at|expires_at|admission_number|identity (identity last, as
-- it may hold any character; empty fields are None).
local function jadd(member, identity, state, order, at, adm, exp, number)
  jbuf[#jbuf + 1] = {member, table.concat({state, order, at, adm, exp, number, identity}, '|')}
end

-- The admitted_at hash holds "admitted_at|admission_number" per active member.
local function split_adm(value)
  return string.match(value, '^([^|]*)|(.*)$')
end

-- Writes the buffered records; returns them as a flat list of member, token, record.
local function jflush(q)
  local out = {}
  local n = #jbuf
  if n == 0 then return out end
  local first = redis.call('HINCRBY', K_META, 'jv', n) - n + 1
  local zargs, hargs = {}, {}
  for i, rec in ipairs(jbuf) do
    local v = first + i - 1
    zargs[#zargs + 1] = v
    zargs[#zargs + 1] = rec[1]
    hargs[#hargs + 1] = rec[1]
    hargs[#hargs + 1] = rec[2]
    out[#out + 1] = rec[1]
    out[#out + 1] = q.ep .. ':' .. v
    out[#out + 1] = rec[2]
  end
  bulk('ZADD', K_JVER, zargs)
  bulk('HSET', K_JREC, hargs)
  jbuf = {}
  return out
end

-- The outflow is sampled while people wait; an empty line ends the busy spell and its samples
-- (what follows is bounded by arrivals, not by the outflow: core.measured_rate).
local function sample_flow(now_s, now)
  if redis.call('ZCARD', K_LINE) == 0 then
    redis.call('DEL', K_FLOW)
    return
  end
  local last = redis.call('LINDEX', K_FLOW, -1)
  if last then
    local t = num(string.match(last, '^([^|]*)'))
    if now - t < FLOW_SAMPLE_EVERY then return end
  end
  local total = redis.call('HGET', K_META, 'total')
  redis.call('RPUSH', K_FLOW, now_s .. '|' .. total)
  redis.call('LTRIM', K_FLOW, -FLOW_SAMPLES_KEPT, -1)
end

-- These waiting entries leave the line other than by admission (left, abandoned, revoked).
-- Batched: a few commands for the whole list, not several per entry. Their journal records go
-- into `recs` by member, for the caller to journal in the order it must keep.
local function end_waiting(members, state, now_s, recs)
  if #members == 0 then return end
  local identities = hmget(K_WHO, members)
  local orders = {}
  for i, member in ipairs(members) do
    orders[i] = redis.call('ZSCORE', K_LINE, member)
    recs[member] = {member, identities[i], state, orders[i], now_s, '', '', ''}
  end
  bulk('ZREM', K_LINE, members)
  bulk('ZREM', K_SEEN, members)
  bulk('HDEL', K_WHO, members)
  bulk('HDEL', K_IDS, identities)
  bulk('RPUSH', K_GONE, orders)
  -- Each departure takes the next number of the departed total (the drain hands them out).
  redis.call('HINCRBY', K_META, 'dep', #orders)
  if redis.call('ZCARD', K_LINE) == 0 then redis.call('DEL', K_FLOW) end
end

-- These active passes end (completed, expired, revoked); `exps` when the caller has them.
local function end_active(members, state, now_s, recs, exps)
  if #members == 0 then return end
  local identities = hmget(K_WHO, members)
  local adms = hmget(K_ADM, members)
  local now, admitted_sum = num(now_s), 0
  for i, member in ipairs(members) do
    local exp = exps and exps[i] or redis.call('ZSCORE', K_ACTIVE, member)
    local adm, number = split_adm(adms[i])
    recs[member] = {member, identities[i], state, '0', now_s, adm, exp, number}
    admitted_sum = admitted_sum + num(adm)
  end
  -- How long passes are held (counts: hn passes ended, hs their seconds, as the admission
  -- times of the active ones, whose seconds so far any `now` can then tell).
  redis.call('HINCRBY', K_META, 'hn', #members)
  redis.call('HINCRBYFLOAT', K_META, 'hs', fmt(#members * now - admitted_sum))
  redis.call('HINCRBYFLOAT', K_META, 'as', fmt(-admitted_sum))
  bulk('ZREM', K_ACTIVE, members)
  bulk('HDEL', K_ADM, members)
  bulk('HDEL', K_WHO, members)
  bulk('HDEL', K_IDS, identities)
end

local function journal_in_order(members, recs)
  for _, member in ipairs(members) do jadd(unpack(recs[member])) end
end

-- Replies that go with every join and status are packed in one string each: a client parses
-- one string far faster than a dozen reply elements (redis-py without hiredis spends
-- microseconds on each).

-- Placement: member|state|position|order|admitted_at|expires_at|created|admission_number|identity
-- (identity last, as it may hold any character; empty fields are None). nil: no live entry.
local function waiting_placement(member, position, order, created, identity)
  return table.concat({member, 'waiting', position, order, '', '', created, '', identity}, '|')
end

local function admitted_placement(member, adm, exp, created, number, identity)
  return table.concat({member, 'admitted', 0, '0', adm, exp, created, number, identity}, '|')
end

local function placement(member, created)
  local identity = redis.call('HGET', K_WHO, member)
  local rank = redis.call('ZRANK', K_LINE, member)
  if rank then
    local order = redis.call('ZSCORE', K_LINE, member)
    return waiting_placement(member, rank + 1, order, created, identity)
  end
  local exp = redis.call('ZSCORE', K_ACTIVE, member)
  if not exp then return nil end
  local adm, number = split_adm(redis.call('HGET', K_ADM, member))
  return admitted_placement(member, adm, exp, created, number, identity)
end

-- Counts: state|waiting|active|admitted_total|departed_total|joined_total (the seq counter)|
-- passes_ended|hold_exposure|stock|ended_hold, then '|time|admitted_total' for each flow sample the outflow rate at `now` needs: the first
-- and the last of the samples inside FLOW_WINDOW (core.flow_in_window, same comparison).
-- Samples are appended at least FLOW_SAMPLE_EVERY apart, so their times increase and the ones
-- inside the window are the last ones: a binary search finds the first.
local function counts(state, now)
  local totals = redis.call('HMGET', K_META, 'total', 'dep', 'seq', 'hn', 'hs', 'as', 'stock')
  local active = redis.call('ZCARD', K_ACTIVE)
  local exposure = num(totals[5] or '0') + active * now - num(totals[6] or '0')
  local out = {state, redis.call('ZCARD', K_LINE), active, totals[1], totals[2] or '0',
    totals[3] or '0', totals[4] or '0', fmt(exposure), totals[7] or '', totals[5] or '0'}
  local flow = redis.call('LRANGE', K_FLOW, 0, -1)
  local n = #flow
  local lo, hi = 1, n + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if now - num(string.match(flow[mid], '^([^|]*)')) <= FLOW_WINDOW then
      hi = mid
    else
      lo = mid + 1
    end
  end
  if lo <= n then out[#out + 1] = flow[lo] end
  if lo < n then out[#out + 1] = flow[n] end
  return table.concat(out, '|')
end
