-- ack: drop journal records whose token is still the latest for their entry.
-- ARGV: member, token, member, token, ...
local ep = redis.call('HGET', K_META, 'ep')
if not ep then return {'ok'} end
for i = 1, #ARGV, 2 do
  local member = ARGV[i]
  local tep, version = string.match(ARGV[i + 1], '^(.*):(%d+)$')
  if tep == ep then
    local current = redis.call('ZSCORE', K_JVER, member)
    if current and tonumber(current) == tonumber(version) then
      redis.call('ZREM', K_JVER, member)
      redis.call('HDEL', K_JREC, member)
    end
  end
end
return {'ok'}
