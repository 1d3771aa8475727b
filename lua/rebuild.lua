-- rebuild.lua: set a product's gate from Postgres, only when the gate is absent.
--
-- KEYS[1]  {p:ID}:gate    KEYS[2]  {p:ID}:holds    KEYS[3]  {p:ID}:dl
-- KEYS[4]  {p:ID}:users   KEYS[5]  {p:ID}:ver
--
-- ARGV[1]  available (stock on hand minus live holds)
-- ARGV[2]  max_per_user
-- ARGV[3]  gate generation (from Postgres; holds are recorded only under the gate's generation)
-- ARGV[4]  the version floor of this generation: gen * 2^30 (stock.VersionBase). Every version
--          handed out under an older generation is below it, so the version never goes back,
--          even when it was lost with Redis or restored from an older copy.
-- ARGV[5..] the live holds, five values each: id, qty, deadline_ms, state, user
--
-- Returns {"rebuilt", available, version} or {"exists", gen} when a gate is already there.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists', tonumber(redis.call('HGET', KEYS[1], 'gen'))}
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
for i = 5, #ARGV, 5 do
  local rid, qty, deadline, state, user = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  redis.call('HSET', KEYS[2], rid, qty .. ':' .. deadline .. ':' .. state .. ':' .. user)
  redis.call('ZADD', KEYS[3], deadline, rid)
  redis.call('HINCRBY', KEYS[4], user, qty)
end
redis.call('HSET', KEYS[1], 'avail', ARGV[1], 'max', ARGV[2], 'gen', ARGV[3])
-- version = max(existing, floor) + 1 (numbers below 2^53 are exact in Lua).
if tonumber(redis.call('GET', KEYS[5]) or '0') < tonumber(ARGV[4]) then
  redis.call('SET', KEYS[5], ARGV[4])
end
local ver = redis.call('INCR', KEYS[5])
return {'rebuilt', tonumber(ARGV[1]), ver}
