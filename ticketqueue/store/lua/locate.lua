-- locate: the identity's live entry, if any, and the queue's counts, read together.
-- ARGV: identity, now. Reply: counts[, placement] (packed, see _common.lua).
local q = load_meta()
if not q then return {'unavailable'} end
local c = counts(q.state, num(ARGV[2]))
local member = redis.call('HGET', K_IDS, ARGV[1])
if not member then return {'ok', c} end
local p = placement(member, 0)
if not p then return {'ok', c} end
return {'ok', c, p}
