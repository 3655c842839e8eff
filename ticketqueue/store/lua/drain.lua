-- drain_departures: the orders of entries that left the line since the last call, once each,
-- in the order they left, and the departed total (the number of the last of them).
if redis.call('EXISTS', K_META) == 0 then return {'unavailable'} end
local gone = redis.call('LRANGE', K_GONE, 0, -1)
redis.call('DEL', K_GONE)
return {'ok', encode(gone), redis.call('HGET', K_META, 'dep') or '0'}
