-- rebuild.lua: set a product's gate from Postgres, only when the gate is absent (or was set
-- before variants existed: a gate without vs is replaced). variants.lua, which lua.go puts in
-- front of this file, writes the holds.
--
-- KEYS[1]  {p:ID}:gate    KEYS[2]  {p:ID}:holds    KEYS[3]  {p:ID}:dl
-- KEYS[4]  {p:ID}:users   KEYS[5]  {p:ID}:ver
--
-- ARGV[1]  available (stock on hand minus live holds, summed over the variants)
-- ARGV[2]  max_per_user
-- ARGV[3]  gate generation (from Postgres; holds are recorded only under the gate's generation)
-- ARGV[4]  the version floor of this generation: gen * 2^30 (stock.VersionBase). Every version
--          handed out under an older generation is below it, so the version never goes back,
--          even when it was lost with Redis or restored from an older copy.
-- ARGV[5]  the variant ids, comma-separated, in the product's order (at least one)
-- ARGV[6]  n, the number of variants
-- ARGV[7..6+2n]  two values per variant: id, available
-- ARGV[7+2n..] the live holds, six values each: id, qty, deadline_ms, state, user, variant
--
-- Returns {"rebuilt", available, version} or {"exists", gen} when a gate is already there.
if redis.call('HEXISTS', KEYS[1], 'vs') == 1 then
  return {'exists', tonumber(redis.call('HGET', KEYS[1], 'gen'))}
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local n = tonumber(ARGV[6])
local first = 7 + 2 * n
local held = 0
for i = first, #ARGV, 6 do
  local rid, qty, deadline, state, user, vid = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  held = held + tonumber(qty)
  redis.call('HSET', KEYS[2], rid, vr_hold(qty, deadline, state, vid, user))
  redis.call('ZADD', KEYS[3], deadline, rid)
  redis.call('HINCRBY', KEYS[4], user, qty)
end
redis.call('HSET', KEYS[1], 'avail', ARGV[1], 'max', ARGV[2], 'gen', ARGV[3], 'vs', ARGV[5], 'held', held)
if n > 1 then
  for i = 7, first - 1, 2 do
    redis.call('HSET', KEYS[1], 'v:' .. ARGV[i], ARGV[i + 1])
  end
end
-- version = max(existing, floor) + 1 (numbers below 2^53 are exact in Lua).
if tonumber(redis.call('GET', KEYS[5]) or '0') < tonumber(ARGV[4]) then
  redis.call('SET', KEYS[5], ARGV[4])
end
local ver = redis.call('INCR', KEYS[5])
return {'rebuilt', tonumber(ARGV[1]), ver}
