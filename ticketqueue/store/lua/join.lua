-- join: the identity's one place; a new entry at the back, or admitted at once (auto/off modes).
-- KEYS: the queue's, then its presence hash (identity -> open connections), then the limits'.
-- ARGV: identity, now, the live channel to announce a new waiting entry on ('' for none),
-- priority (0: the public; a group's entries stand in its band ahead, core/_priority.py), how
-- many of the identity's open connections are the joiner's own (its socket: 1, a REST call:
-- 0); then, for join_within_limits, the limits' clock and a limit and period for each key after
-- the presence hash (_limits.lua).
-- The entry is announced only when the identity has another connection open (a second tab):
-- every socket process of the queue hears each message, and the ticks carry the count of
-- people waiting anyway.
-- Reply: counts, placement (packed, see _common.lua), read together; then '1' if no
-- announcement is left to make (sent, or nobody to tell).
-- Or 'limited' and each limit's wait, when one had no room: nothing counted or changed then.
local q = load_meta()
if not q then return {'unavailable'} end
local K_PRESENCE = KEYS[QUEUE_KEY_COUNT + 1]
if #KEYS > QUEUE_KEY_COUNT + 1 then
  local limit_keys = {unpack(KEYS, QUEUE_KEY_COUNT + 2)}
  local refused, waits = count_limits(limit_keys, ARGV, 7, tonumber(ARGV[6]))
  if refused then return {'limited', unpack(waits)} end
end
local identity, now_s, channel = ARGV[1], ARGV[2], ARGV[3] or ''
local priority = tonumber(ARGV[4] or '0') or 0
local own = tonumber(ARGV[5] or '0') or 0
local now = num(now_s)

local member = redis.call('HGET', K_IDS, identity)
if member then
  local p = placement(member, 0)
  if p then return {'ok', counts(q.state, now), p} end
end
if q.state == 'closed' then return {'closed'} end
local waiting = redis.call('ZCARD', K_LINE)
if q.max ~= nil and waiting >= q.max then return {'full'} end
if q.ppi ~= nil and tonumber(redis.call('HGET', K_PASSES, identity) or '0') >= q.ppi then
  return {'pass_limit'}
end

local seq = redis.call('HINCRBY', K_META, 'seq', 1)
member = seq_member(seq)
local order_n = seq - priority * PRIORITY_BAND
local order = string.format('%d', order_n)
redis.call('HSET', K_IDS, identity, member)
redis.call('HSET', K_WHO, member, identity)

if q.state == 'open' and q.mode ~= 'always' then
  local admit_now = q.mode == 'off'
  -- Auto mode admits at once only while nobody waits, so a newcomer never passes anyone.
  if q.mode == 'auto' and waiting == 0 then
    refill(q, now)
    local active = redis.call('ZCARD', K_ACTIVE)
    if allowance(q, active, 1, q.tok, nil) > 0 then
      q.tok = q.tok - 1
      admit_now = true
    end
    save_bucket(q)
  end
  if admit_now then
    local exp = fmt(now + q.win)
    local number = redis.call('HINCRBY', K_META, 'total', 1)
    redis.call('ZADD', K_ACTIVE, exp, member)
    redis.call('HSET', K_ADM, member, now_s .. '|' .. number)
    redis.call('HINCRBYFLOAT', K_META, 'as', now_s)
    redis.call('HINCRBY', K_PASSES, identity, 1)
    jadd(member, identity, 'admitted', order, now_s, now_s, exp, number)
    jflush(q)
    sample_flow(now_s, now)
    return {'ok', counts(q.state, now), admitted_placement(member, now_s, exp, 1, number, identity)}
  end
end

redis.call('ZADD', K_LINE, order, member)
redis.call('ZADD', K_SEEN, now_s, member)
jadd(member, identity, 'waiting', order, now_s, '', '', '')
jflush(q)
-- The new entry's placement from what was just written, as for an admission above:
-- placement() would read it back.
local position = redis.call('ZRANK', K_LINE, member) + 1
local reply = {'ok', counts(q.state, now), waiting_placement(member, position, order, 1, identity)}
if channel ~= '' then
  if tonumber(redis.call('HGET', K_PRESENCE, identity) or '0') > own then
    -- The message live/publisher.py would send: the identity's other sockets learn their
    -- place, with the totals read with it, and no process pays a round trip for it.
    local totals = redis.call('HMGET', K_META, 'total', 'dep')
    redis.call(PUBLISH, channel, cjson.encode({
      k = 'joined', identity = identity, seq = seq, order = order_n,
      position = position,
      t = tonumber(totals[1]), dt = tonumber(totals[2] or '0'),
    }))
  end
  reply[4] = '1'
end
return reply
