-- admit: move entries from the head of the line to active, as many as the outflow allows.
-- ARGV: now, limit ('' for none), use_rate ('1' or '0')
-- Reply: [] or [expires_at, first admission number, member, identity, member, identity, ...]
local q = load_meta()
if not q then return {'unavailable'} end
if q.state ~= 'open' then return {'ok', '[]'} end
local now_s = ARGV[1]
local now = num(now_s)
local use_rate = ARGV[3] == '1'

refill(q, now)
local waiting = redis.call('ZCARD', K_LINE)
-- An operator's "admit N now" ignores the rate bucket (and leaves it untouched), never capacity.
local tokens = waiting
if use_rate then tokens = q.tok end
local n = allowance(q, redis.call('ZCARD', K_ACTIVE), waiting, tokens, opt(ARGV[2]))

local out = {}
if n > 0 then
  local head = redis.call('ZRANGE', K_LINE, 0, n - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', K_LINE, 0, n - 1)
  local members = {}
  for i = 1, #head, 2 do members[#members + 1] = head[i] end
  bulk('ZREM', K_SEEN, members)
  local identities = hmget(K_WHO, members)
  local exp = fmt(now + q.win)
  -- Admission numbers count admissions in the order they happen, head of the line first.
  local first = redis.call('HINCRBY', K_META, 'total', n) - n + 1
  local zargs, hargs = {}, {}
  out = {exp, tostring(first)}
  for i, member in ipairs(members) do
    local number = first + i - 1
    zargs[#zargs + 1] = exp
    zargs[#zargs + 1] = member
    hargs[#hargs + 1] = member
    hargs[#hargs + 1] = now_s .. '|' .. number
    jadd(member, identities[i], 'admitted', head[2 * i], now_s, now_s, exp, number)
    out[#out + 1] = member
    out[#out + 1] = identities[i]
  end
  bulk('ZADD', K_ACTIVE, zargs)
  bulk('HSET', K_ADM, hargs)
  jflush(q)
  if use_rate then q.tok = q.tok - n end
end
save_bucket(q)
if n > 0 then sample_flow(now_s, now) end
return {'ok', encode(out)}
