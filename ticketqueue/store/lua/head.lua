-- head: the first `count` places of the line, from the first whose order is above `after`
-- (a milestone's high-water mark; '' for the whole head), at most `limit` of them.
-- ARGV: count, after, limit
-- Reply: one JSON list member, order, identity, seen, ... in line order.
local q = load_meta()
if not q then return {'unavailable'} end
local count, low, skip = tonumber(ARGV[1]), '-inf', 0
if ARGV[2] ~= '' then
  skip = redis.call('ZCOUNT', K_LINE, '-inf', ARGV[2])
  low = '(' .. ARGV[2]
end
if count <= skip then return {'ok', '[]'} end
local page = redis.call('ZRANGEBYSCORE', K_LINE, low, '+inf', 'WITHSCORES', 'LIMIT', 0,
  math.min(count - skip, tonumber(ARGV[3])))
local members = {}
for i = 1, #page, 2 do members[#members + 1] = page[i] end
if #members == 0 then return {'ok', '[]'} end
local identities = hmget(K_WHO, members)
local out = {}
for i, member in ipairs(members) do
  local seen = redis.call('ZSCORE', K_SEEN, member) or '0'
  out[#out + 1] = member
  out[#out + 1] = page[2 * i]
  out[#out + 1] = identities[i]
  out[#out + 1] = seen
end
return {'ok', encode(out)}
