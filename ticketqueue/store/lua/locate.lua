-- locate: the identity's live entry, if any. ARGV: identity
local q = load_meta()
if not q then return {'unavailable'} end
local member = redis.call('HGET', K_IDS, ARGV[1])
if not member then return {'ok'} end
local p = placement(member, 0)
if not p then return {'ok'} end
return {'ok', p}
