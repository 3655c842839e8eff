-- configure: create the queue with a full bucket, or change its knobs (closed stays closed).
-- ARGV: state, mode, capacity, rate, max_size, purchase_window, now, epoch, disconnect_grace,
-- passes_per_identity
local now_s = ARGV[7]
if redis.call('EXISTS', K_META) == 0 then
  -- A fresh queue starts empty, even if stray keys of an earlier one survived.
  redis.call('UNLINK', K_LINE, K_SEEN, K_WHO, K_IDS, K_ACTIVE, K_ADM, K_JREC, K_JVER, K_GONE, K_FLOW,
    K_PASSES)
  local q = {rate = opt(ARGV[4])}
  redis.call('HSET', K_META, 'state', ARGV[1], 'mode', ARGV[2], 'cap', ARGV[3], 'rate', ARGV[4],
    'max', ARGV[5], 'win', ARGV[6], 'grace', ARGV[9], 'seq', 0, 'total', 0, 'dep', 0, 'jv', 0,
    'ep', ARGV[8], 'tok', fmt(bucket_size(q)), 'tat', now_s, 'ppi', ARGV[10])
  return {'ok'}
end
local state = ARGV[1]
if redis.call('HGET', K_META, 'state') == 'closed' then state = 'closed' end
redis.call('HSET', K_META, 'state', state, 'mode', ARGV[2], 'cap', ARGV[3], 'rate', ARGV[4],
  'max', ARGV[5], 'win', ARGV[6], 'grace', ARGV[9], 'ppi', ARGV[10])
return {'ok'}
