-- abandon: waiting entries not seen since seen_before become ABANDONED, in seq order.
-- ARGV: now, seen_before, limit[, member...]
-- Without members it takes every stale entry if there are at most `limit` (the usual case, one
-- atomic step) and otherwise answers 'more': the caller then lists them itself and passes them
-- in seq-ordered batches, each re-checked here, so no script call runs long.
local q = load_meta()
if not q then return {'unavailable'} end
local now_s, seen_before = ARGV[1], num(ARGV[2])
local members
if #ARGV > 3 then
  members = {}
  for i = 4, #ARGV do
    local seen = redis.call('ZSCORE', K_SEEN, ARGV[i])
    if seen and num(seen) < seen_before then members[#members + 1] = ARGV[i] end
  end
else
  local limit = tonumber(ARGV[3])
  members = redis.call('ZRANGEBYSCORE', K_SEEN, '-inf', '(' .. ARGV[2], 'LIMIT', 0, limit + 1)
  if #members > limit then return {'ok', 'more'} end
  table.sort(members) -- zero-padded members: string order is seq order
end
local recs = {}
end_waiting(members, 'abandoned', now_s, recs)
journal_in_order(members, recs)
return {'ok', encode(jflush(q))}
