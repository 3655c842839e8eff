-- end_idle: end these active passes as ABANDONED (their holders have been gone past the pass
-- idle grace), journalled in the order given; members not active are skipped. ARGV: now, member...
local q = load_meta()
if not q then return {'unavailable'} end
local members, taken = {}, {}
for i = 2, #ARGV do
  local member = ARGV[i]
  if not taken[member] and redis.call('ZSCORE', K_ACTIVE, member) then
    taken[member] = true
    members[#members + 1] = member
  end
end
local recs = {}
end_active(members, 'abandoned', ARGV[1], recs)
journal_in_order(members, recs)
return {'ok', encode(jflush(q))}
