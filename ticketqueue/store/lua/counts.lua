-- counts: state, waiting, active, admitted total and the outflow samples.
local state = redis.call('HGET', K_META, 'state')
if not state then return {'unavailable'} end
return {'ok', state, redis.call('ZCARD', K_LINE), redis.call('ZCARD', K_ACTIVE),
  redis.call('HGET', K_META, 'total'), redis.call('LRANGE', K_FLOW, 0, -1)}
