-- touch: mark waiting entries as seen now (abandonment is judged on it). ARGV: now, identity...
-- Reply: 'ok', then for each identity 1 while it has a live entry (an admitted one too), else 0.
local q = load_meta()
if not q then return {'unavailable'} end
local out = {'ok'}
for i = 2, #ARGV do
  local member = redis.call('HGET', K_IDS, ARGV[i])
  out[i] = member and 1 or 0
  if member and redis.call('ZSCORE', K_LINE, member) then
    redis.call('ZADD', K_SEEN, ARGV[1], member)
  end
end
return out
