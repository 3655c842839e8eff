-- acquire_lock: take the lock, or renew it for its owner. KEYS[1]: lock; ARGV: owner, ttl ms
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
