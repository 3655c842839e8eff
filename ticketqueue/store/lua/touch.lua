-- touch: mark a waiting entry as seen now (abandonment is judged on it). ARGV: identity, now
-- Reply 1 while the identity has a live entry (an admitted one too), else 0.
local q = load_meta()
if not q then return {'unavailable'} end
local member = redis.call('HGET', K_IDS, ARGV[1])
if not member then return {'ok', 0} end
if redis.call('ZSCORE', K_LINE, member) then redis.call('ZADD', K_SEEN, ARGV[2], member) end
return {'ok', 1}
