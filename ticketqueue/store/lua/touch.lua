-- touch: mark a waiting entry as seen now (abandonment is judged on it). ARGV: identity, now
local q = load_meta()
if not q then return {'unavailable'} end
local member = redis.call('HGET', K_IDS, ARGV[1])
if not member or not redis.call('ZSCORE', K_LINE, member) then return {'ok', 0} end
redis.call('ZADD', K_SEEN, ARGV[2], member)
return {'ok', 1}
