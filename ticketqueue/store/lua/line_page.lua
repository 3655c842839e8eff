-- A page of the line with its orders, read-only, for the pre-queue shuffle: entries from score
-- `low` on, skipping the first `offset` of them. KEYS[1]: line; ARGV: low, offset, count
-- Reply: one JSON list member, order, member, order, ... (cheap for the client to parse).
local page = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES', 'LIMIT',
  ARGV[2], ARGV[3])
if #page == 0 then return '[]' end
return cjson.encode(page)
