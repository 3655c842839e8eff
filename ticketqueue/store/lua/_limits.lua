-- Shared by hit_limits and join (RedisStore prepends it to both): count one hit against each
-- limit, all or nothing (core.limit_check, mirrored). Each limit is a hash under the queue's
-- hash tag (w: fixed window number, c: its count, p: the previous window's, d: the period they
-- were counted under: a changed period counts anew). LIMIT_SLACK comes from the constants.
-- keys: the limits' keys; argv[first + 2i - 2], argv[first + 2i - 1]: limit i's limit and
-- period. Returns whether one refused, and per key '' when it had room, else the seconds until
-- it would (as a string). Nothing is counted when one refused.
local function count_limits(keys, argv, first, now)
  local out, after = {}, {}
  local refused = false
  for i, key in ipairs(keys) do
    local limit, period = tonumber(argv[first + 2 * i - 2]), tonumber(argv[first + 2 * i - 1])
    local window = math.floor(now / period)
    local fraction = (now - window * period) / period
    local h = redis.call('HMGET', key, 'w', 'c', 'p', 'd')
    local sw = tonumber(h[1])
    if tonumber(h[4]) ~= period then sw = nil end
    if sw and sw > window then -- another clock ran ahead: its window
      window, fraction = sw, 0.0
    end
    local cur, prev = 0, 0
    if sw == window then
      cur, prev = tonumber(h[2]) or 0, tonumber(h[3]) or 0
    elseif sw == window - 1 then
      prev = tonumber(h[2]) or 0
    end
    local wait = nil
    if limit <= 0 then
      wait = period
    elseif prev * (1.0 - fraction) + cur + 1 <= limit + LIMIT_SLACK then
      after[i] = {window, cur + 1, prev, period}
    elseif cur + 1 <= limit then
      wait = math.max(0.0, (1.0 - (limit - 1 - cur) / prev - fraction) * period)
    else
      wait = (1.0 - fraction + math.max(0.0, 1.0 - (limit - 1) / cur)) * period
    end
    if wait then
      refused = true
      out[i] = string.format('%.17g', wait)
    else
      out[i] = ''
    end
  end
  if not refused then
    for i, key in ipairs(keys) do
      local a = after[i]
      local period = string.format('%.17g', a[4])
      redis.call('HSET', key, 'w', string.format('%d', a[1]), 'c', a[2], 'p', a[3], 'd', period)
      -- The counter matters until the end of the window after its own.
      local ttl = math.ceil(((a[1] + 2) * a[4] - now) * 1000)
      redis.call('PEXPIRE', key, math.max(1, ttl))
    end
  end
  return refused, out
end
