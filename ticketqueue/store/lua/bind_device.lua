-- bind_device: the device that holds identity's place (one device per person).
-- ARGV: identity, device. KEYS[13]: hash identity -> device, beside the queue's keys.
-- Reply: previous device ('' when none or the same), held (1: refused, admitted on previous).
-- While the place waits, or there is none, the newest device takes it over; once admitted,
-- the device that held it then keeps it (the pass is bound to it).
local q = load_meta()
if not q then return {'unavailable'} end
local K_DEV = KEYS[13]
local identity, device = ARGV[1], ARGV[2]
local current = redis.call('HGET', K_DEV, identity)
if current == device then return {'ok', '', 0} end
if current then
  local member = redis.call('HGET', K_IDS, identity)
  if member and redis.call('ZSCORE', K_ACTIVE, member) then return {'ok', current, 1} end
end
redis.call('HSET', K_DEV, identity, device)
return {'ok', current or '', 0}
