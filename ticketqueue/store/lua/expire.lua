-- expire: end every pass whose expiry is at or before now (EXPIRED). ARGV: now
local q = load_meta()
if not q then return {'unavailable'} end
local now_s = ARGV[1]
-- Ties in expiry (a batch admitted together) come back in member order, which is seq order.
local due = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', now_s, 'WITHSCORES')
if #due == 0 then return {'ok', '[]'} end
local members, exps = {}, {}
for i = 1, #due, 2 do
  members[#members + 1] = due[i]
  exps[#exps + 1] = due[i + 1]
end
local recs = {}
end_active(members, 'expired', now_s, recs, exps)
journal_in_order(members, recs)
return {'ok', encode(jflush(q))}
