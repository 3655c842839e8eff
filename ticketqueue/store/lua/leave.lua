-- leave: take the identity's waiting entry out of line (LEFT). ARGV: identity, now
local q = load_meta()
if not q then return {'unavailable'} end
local member = redis.call('HGET', K_IDS, ARGV[1])
if not member or not redis.call('ZSCORE', K_LINE, member) then return {'ok', '[]'} end
local recs = {}
end_waiting({member}, 'left', ARGV[2], recs)
journal_in_order({member}, recs)
return {'ok', encode(jflush(q))}
