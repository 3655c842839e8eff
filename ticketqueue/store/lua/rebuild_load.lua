-- rebuild (loading step): add one chunk of records to the staged keys. One JSON argument per
-- chunk costs the client far less than thousands of command arguments.
-- KEYS: staged line, seen, who, ids, active, admitted_at, passes
-- ARGV: 'waiting', 'active' or 'passes', ttl seconds, JSON list of strings:
--   waiting: member, order, seen_at, identity; active: member, expires_at, admitted, identity
--   (4 per record); passes: identity, passes it had (2 per record)
local SLICE = 4000
local function bulk(cmd, key, args)
  for i = 1, #args, SLICE do
    redis.call(cmd, key, unpack(args, i, math.min(i + SLICE - 1, #args)))
  end
end

local data = cjson.decode(ARGV[3])
if ARGV[1] == 'passes' then
  bulk('HSET', KEYS[7], data)
  redis.call('EXPIRE', KEYS[7], ARGV[2])
  return 0
end
local scores, values, who, ids = {}, {}, {}, {}
for i = 1, #data, 4 do
  local member, identity = data[i], data[i + 3]
  scores[#scores + 1] = data[i + 1]
  scores[#scores + 1] = member
  values[#values + 1] = data[i + 2]
  values[#values + 1] = member
  who[#who + 1] = member
  who[#who + 1] = identity
  ids[#ids + 1] = identity
  ids[#ids + 1] = member
end
if ARGV[1] == 'waiting' then
  bulk('ZADD', KEYS[1], scores)
  bulk('ZADD', KEYS[2], values)
else
  bulk('ZADD', KEYS[5], scores)
  -- admitted_at holds member -> value, so swap the pairs back
  local adm = {}
  for i = 1, #values, 2 do
    adm[#adm + 1] = values[i + 1]
    adm[#adm + 1] = values[i]
  end
  bulk('HSET', KEYS[6], adm)
end
bulk('HSET', KEYS[3], who)
bulk('HSET', KEYS[4], ids)
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('EXPIRE', key, ARGV[2]) end
end
return 0
