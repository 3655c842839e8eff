-- revoke: end these live entries, waiting or admitted (REVOKED), journalled in the order given;
-- unknown or repeated members are skipped. ARGV: now, member...
local q = load_meta()
if not q then return {'unavailable'} end
local now_s = ARGV[1]
local order, waiting, active, taken = {}, {}, {}, {}
for i = 2, #ARGV do
  local member = ARGV[i]
  if not taken[member] then
    taken[member] = true
    if redis.call('ZSCORE', K_LINE, member) then
      waiting[#waiting + 1] = member
      order[#order + 1] = member
    elseif redis.call('ZSCORE', K_ACTIVE, member) then
      active[#active + 1] = member
      order[#order + 1] = member
    end
  end
end
local recs = {}
end_waiting(waiting, 'revoked', now_s, recs)
end_active(active, 'revoked', now_s, recs)
journal_in_order(order, recs)
return {'ok', encode(jflush(q))}
