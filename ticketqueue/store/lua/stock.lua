-- stock: what the site can still sell ('' for unknown), read back with the counts.
-- ARGV: remaining
local q = load_meta()
if not q then return {'unavailable'} end
if ARGV[1] == '' then
  redis.call('HDEL', K_META, 'stock')
else
  redis.call('HSET', K_META, 'stock', ARGV[1])
end
return {'ok'}
