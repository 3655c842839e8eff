-- advance_mark: raise a milestone's high-water mark, never lower it. KEYS[1]: the queue's marks
-- hash. ARGV: name, value. Reply: the mark before ('' when unset).
local before = redis.call('HGET', KEYS[1], ARGV[1])
if not before or tonumber(ARGV[2]) > tonumber(before) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return before or ''
