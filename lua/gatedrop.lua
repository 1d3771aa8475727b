-- gatedrop.lua: complete a gate that rebuild.lua just set with what a drop needs: the sale
-- window, the waiting room's rate, and the units each shopper bought (paid or fulfilled holds
-- that left the gate), so that max_per_user counts them over the whole sale. It runs in the
-- same MULTI as rebuild.lua, so no reserve ever sees a rebuilt gate without these fields.
--
-- KEYS[1]  {p:ID}:gate    KEYS[2]  {p:ID}:users
--
-- ARGV[1]  the generation the rebuild set (nothing happens unless the gate has it)
-- ARGV[2]  opens_at (ms, "" for none)   ARGV[3]  closes_at (ms, "" for none)
-- ARGV[4]  queue_rate (0: no waiting room)
-- ARGV[5]  "1" when the product is sold by draw (every reserve is not_admitted), else "0"
-- ARGV[6..] two values per shopper: user, units bought
--
-- Returns 1 when it completed the gate, 0 when the gate is another generation or was done.
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], 'drop') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'qrate', ARGV[4], 'drop', '1')
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'opens', ARGV[2])
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'closes', ARGV[3])
end
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'draw', '1')
end
for i = 6, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
end
return 1
