-- admit: move entries from the head of the line to active, as many as the outflow allows.
-- ARGV: now, limit ('' for none), use_rate ('1' or '0')
-- Reply: [] or [expires_at, first admission number, member, identity, member, identity, ...]
-- A head unseen for longer than the queue's grace is abandoned in this same step instead of
-- admitted (at most STALE_SKIP_LIMIT per call), so nobody long gone is handed a slot.
local q = load_meta()
if not q then return {'unavailable'} end
if q.state ~= 'open' then return {'ok', '[]'} end
local now_s = ARGV[1]
local now = num(ARGV[1])
local use_rate = ARGV[3] == '1'

refill(q, now)
local waiting = redis.call('ZCARD', K_LINE)
-- An operator's "admit N now" ignores the rate bucket (and leaves it untouched), never capacity.
local tokens = waiting
if use_rate then tokens = q.tok end
local n = allowance(q, redis.call('ZCARD', K_ACTIVE), waiting, tokens, opt(ARGV[2]))

local members, orders, stale = {}, {}, {}
local seen_before = -INF
if q.grace then seen_before = now - q.grace end
local start, full = 0, false
while #members < n and not full do
  local head = redis.call('ZRANGE', K_LINE, start, start + math.min(n - #members, SLICE) - 1,
    'WITHSCORES')
  if #head == 0 then break end
  local page = {}
  for i = 1, #head, 2 do page[#page + 1] = head[i] end
  local seen = {}
  if q.grace then seen = redis.call('ZMSCORE', K_SEEN, unpack(page)) end
  for i, member in ipairs(page) do
    if seen[i] and num(seen[i]) < seen_before then
      if #stale >= STALE_SKIP_LIMIT then
        full = true
        break
      end
      stale[#stale + 1] = member
    else
      members[#members + 1] = member
      orders[#orders + 1] = head[2 * i]
    end
  end
  start = start + #page
end

local out = {}
if #stale > 0 then
  local recs = {}
  table.sort(stale) -- zero-padded members: string order is seq order
  end_waiting(stale, 'abandoned', now_s, recs)
  journal_in_order(stale, recs)
end
if #members > 0 then
  local count = #members
  bulk('ZREM', K_LINE, members)
  bulk('ZREM', K_SEEN, members)
  local identities = hmget(K_WHO, members)
  local exp = fmt(now + q.win)
  -- Admission numbers count admissions in the order they happen, head of the line first.
  local first = redis.call('HINCRBY', K_META, 'total', count) - count + 1
  local zargs, hargs = {}, {}
  out = {exp, tostring(first)}
  for i, member in ipairs(members) do
    local number = first + i - 1
    zargs[#zargs + 1] = exp
    zargs[#zargs + 1] = member
    hargs[#hargs + 1] = member
    hargs[#hargs + 1] = now_s .. '|' .. number
    jadd(member, identities[i], 'admitted', orders[i], now_s, now_s, exp, number)
    out[#out + 1] = member
    out[#out + 1] = identities[i]
    redis.call('HINCRBY', K_PASSES, identities[i], 1)
  end
  bulk('ZADD', K_ACTIVE, zargs)
  bulk('HSET', K_ADM, hargs)
  redis.call('HINCRBYFLOAT', K_META, 'as', fmt(count * now))
  if use_rate then q.tok = q.tok - count end
end
if #stale > 0 or #members > 0 then jflush(q) end
save_bucket(q)
sample_flow(now_s, now)
return {'ok', encode(out)}
