-- release: end an active pass because its order completed (COMPLETED). ARGV: member, now
local q = load_meta()
if not q then return {'unavailable'} end
if not redis.call('ZSCORE', K_ACTIVE, ARGV[1]) then return {'ok', '[]'} end
local recs = {}
end_active({ARGV[1]}, 'completed', ARGV[2], recs)
journal_in_order({ARGV[1]}, recs)
return {'ok', encode(jflush(q))}
