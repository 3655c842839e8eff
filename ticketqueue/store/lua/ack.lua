-- ack: drop journal records whose token is still the latest for their entry.
-- ARGV: one JSON array [member, token, member, token, ...] (one argument: cheaper to send than
-- thousands). A batch costs one ZSCORE per record and two bulk deletions.
local ep = redis.call('HGET', K_META, 'ep')
if not ep then return {'ok'} end
local pairs_ = cjson.decode(ARGV[1])
local done = {}
for i = 1, #pairs_, 2 do
  local member = pairs_[i]
  local tep, version = string.match(pairs_[i + 1], '^(.*):(%d+)$')
  if tep == ep then
    local current = redis.call('ZSCORE', K_JVER, member)
    if current and tonumber(current) == tonumber(version) then
      done[#done + 1] = member
    end
  end
end
if #done > 0 then
  bulk('ZREM', K_JVER, done)
  bulk('HDEL', K_JREC, done)
end
return {'ok'}
