-- hit_limits: count one hit against each limit, all or nothing (_limits.lua).
-- KEYS: one hash per limit, all under the queue's hash tag. ARGV: now, then limit and period
-- for each key. Returns per key '' when it had room, else the seconds until it would.
local _, out = count_limits(KEYS, ARGV, 2, tonumber(ARGV[1]))
return out
