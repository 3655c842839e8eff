-- passes: the active passes expiring after `after` and by `by`, soonest first, at most `limit`.
-- ARGV: after, by, limit. Reply: one JSON list member, expires, identity, admitted, number, ...
local q = load_meta()
if not q then return {'unavailable'} end
local page = redis.call('ZRANGEBYSCORE', K_ACTIVE, '(' .. ARGV[1], ARGV[2], 'WITHSCORES', 'LIMIT',
  0, tonumber(ARGV[3]))
local members = {}
for i = 1, #page, 2 do members[#members + 1] = page[i] end
if #members == 0 then return {'ok', '[]'} end
local identities = hmget(K_WHO, members)
local adms = hmget(K_ADM, members)
local out = {}
for i, member in ipairs(members) do
  local adm, number = split_adm(adms[i])
  out[#out + 1] = member
  out[#out + 1] = page[2 * i]
  out[#out + 1] = identities[i]
  out[#out + 1] = adm
  out[#out + 1] = number
end
return {'ok', encode(out)}
