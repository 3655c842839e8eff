-- hit_limits: count one hit against each limit of each request, all or nothing per request
-- (_limits.lua), request after request (a later one sees what an earlier one counted).
-- KEYS: one hash per limit, all under the queue's hash tag, the requests' in order. ARGV: now,
-- then for each request its number of limits and, for each limit, its limit and period.
-- Returns for each request, per key, '' when it had room, else the seconds until it would.
local now = tonumber(ARGV[1])
local results, k, a = {}, 1, 2
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  local keys = {}
  for i = 1, n do keys[i] = KEYS[k + i - 1] end
  local _, out = count_limits(keys, ARGV, a + 1, now)
  results[#results + 1] = out
  k, a = k + n, a + 1 + 2 * n
end
return results
