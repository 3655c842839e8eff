-- claim_use: count one use of a token. KEYS[1]: its counter (beside the queue).
-- ARGV: uses allowed, time to live in ms (from the first use). Reply 1 while within the uses.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then return 0 end
return 1
