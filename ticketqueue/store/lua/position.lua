-- position: people ahead plus one, exact (0 when not waiting). ARGV: member
if redis.call('EXISTS', K_META) == 0 then return {'unavailable'} end
local rank = redis.call('ZRANK', K_LINE, ARGV[1])
if not rank then return {'ok', 0} end
return {'ok', rank + 1}
