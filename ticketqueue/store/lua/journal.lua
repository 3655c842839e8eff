-- journal: up to `limit` unacknowledged records, oldest first (member, token, record).
-- ARGV: limit
local q = load_meta()
if not q then return {'unavailable'} end
local limit = tonumber(ARGV[1])
if limit <= 0 then return {'ok', '[]'} end
local head = redis.call('ZRANGE', K_JVER, 0, limit - 1, 'WITHSCORES')
local members = {}
for i = 1, #head, 2 do members[#members + 1] = head[i] end
local recs = hmget(K_JREC, members)
local out = {}
for i, member in ipairs(members) do
  out[#out + 1] = member
  out[#out + 1] = q.ep .. ':' .. head[2 * i]
  out[#out + 1] = recs[i]
end
return {'ok', encode(out)}
