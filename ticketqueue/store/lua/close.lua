-- close: the first call flips the queue to closed (so no join slips in) and counts the line;
-- each call then removes up to `chunk` waiting entries, so a million-entry line never blocks
-- Redis in one long script. Their journal records go too: the rows are closed in bulk.
-- ARGV: chunk, epoch ('' on the first call; the queue's epoch on the calls that follow)
-- Reply: count at closing, entries still to remove, epoch
local q = load_meta()
if not q then return {'unavailable'} end
local chunk = tonumber(ARGV[1])
local count = 0
if ARGV[2] == '' then
  redis.call('HSET', K_META, 'state', 'closed')
  count = redis.call('ZCARD', K_LINE)
elseif ARGV[2] ~= q.ep then
  return {'ok', 0, 0, q.ep} -- rebuilt since: the new line is not ours to clear
end
local members = redis.call('ZRANGE', K_LINE, 0, chunk - 1)
if #members > 0 then
  redis.call('ZREMRANGEBYRANK', K_LINE, 0, #members - 1)
  local identities = hmget(K_WHO, members)
  local ids = {}
  for i = 1, #members do
    if identities[i] then ids[#ids + 1] = identities[i] end
  end
  bulk('ZREM', K_SEEN, members)
  bulk('HDEL', K_WHO, members)
  bulk('HDEL', K_IDS, ids)
  bulk('HDEL', K_JREC, members)
  bulk('ZREM', K_JVER, members)
end
return {'ok', count, redis.call('ZCARD', K_LINE), q.ep}
