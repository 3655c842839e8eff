-- counts: state, waiting, active, the admitted and departed totals and the outflow samples
-- the rate at `now` needs (packed, see _common.lua). ARGV: now
local state = redis.call('HGET', K_META, 'state')
if not state then return {'unavailable'} end
return {'ok', counts(state, num(ARGV[1]))}
