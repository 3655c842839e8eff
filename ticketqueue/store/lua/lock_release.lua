-- release_lock: only the owner may release. KEYS[1]: lock; ARGV: owner
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
