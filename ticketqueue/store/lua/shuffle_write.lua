-- The pre-queue shuffle's new orders, one chunk at a time. ZADD XX: an entry that left while
-- the shuffle was dealt is not brought back. KEYS[1]: line; ARGV: JSON list member, order, ...
local data = cjson.decode(ARGV[1])
local args = {}
for i = 1, #data, 2 do
  args[#args + 1] = data[i + 1]
  args[#args + 1] = data[i]
end
for i = 1, #args, 4000 do
  redis.call('ZADD', KEYS[1], 'XX', unpack(args, i, math.min(i + 3999, #args)))
end
return 0
