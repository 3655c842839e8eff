-- locate: identities' live entries, if any, and the queue's counts, read together.
-- ARGV: now, identity... Reply: 'ok', counts, then for each identity its placement (packed,
-- see _common.lua) or '' when it has no live entry.
local q = load_meta()
if not q then return {'unavailable'} end
local out = {'ok', counts(q.state, num(ARGV[1]))}
for i = 2, #ARGV do
  local member = redis.call('HGET', K_IDS, ARGV[i])
  out[i + 1] = member and placement(member, 0) or ''
end
return out
