-- rebuild (last step): swap the staged line and passes in and write the queue's meta, so the
-- queue appears loaded, complete, in one step. KEYS[13..19]: staged line, seen, who, ids,
-- active, admitted_at, passes. ARGV: state, mode, capacity, rate, max_size, purchase_window,
-- now, epoch, next_seq, admitted_total, departed total if the queue was lost,
-- disconnect_grace, the sum of the active passes' admission times, passes_per_identity, '1'
-- when the passes each identity had are given (else a held queue keeps its own)
-- The departed total and the departures not yet drained carry over while the queue is held, so
-- departure numbers go on; a lost queue's start above any it handed out (base.py).
local departed = ARGV[11]
local held = {'0', '0'} -- passes ended and their seconds: measured on while the queue is held
local stock = false -- what the site can still sell: kept while the queue is held
if redis.call('EXISTS', K_META) == 1 then
  departed = redis.call('HGET', K_META, 'dep') or departed
  local m = redis.call('HMGET', K_META, 'hn', 'hs', 'stock')
  held = {m[1] or '0', m[2] or '0'}
  stock = m[3]
else
  redis.call('UNLINK', K_GONE)
end
-- UNLINK frees a replaced million-entry line in the background instead of blocking here.
redis.call('UNLINK', K_META, K_LINE, K_SEEN, K_WHO, K_IDS, K_ACTIVE, K_ADM, K_JREC, K_JVER,
  K_FLOW)
local targets = {K_LINE, K_SEEN, K_WHO, K_IDS, K_ACTIVE, K_ADM}
if ARGV[15] == '1' then
  redis.call('UNLINK', K_PASSES)
  targets[#targets + 1] = K_PASSES
end
for i, target in ipairs(targets) do
  local staged = KEYS[12 + i]
  if redis.call('EXISTS', staged) == 1 then
    redis.call('RENAME', staged, target)
    redis.call('PERSIST', target) -- staged keys carry a TTL in case the loader dies
  end
end
local q = {rate = opt(ARGV[4])}
redis.call('HSET', K_META, 'state', ARGV[1], 'mode', ARGV[2], 'cap', ARGV[3], 'rate', ARGV[4],
  'max', ARGV[5], 'win', ARGV[6], 'grace', ARGV[12], 'seq', ARGV[9], 'total', ARGV[10],
  'dep', departed, 'jv', 0, 'ep', ARGV[8], 'tok', fmt(bucket_size(q)), 'tat', ARGV[7], 'hn', held[1], 'hs', held[2],
  'as', ARGV[13], 'ppi', ARGV[14])
if stock then redis.call('HSET', K_META, 'stock', stock) end
return {'ok'}
