-- drop.lua: forget fulfilled holds without giving their units back: the units left stock on
-- hand in Postgres, so available (stock minus held) does not change. The shopper's count in
-- {p:ID}:users keeps them: bought units count against max_per_user over the whole sale (a
-- rebuild counts them again from Postgres's fulfilled holds).
--
-- KEYS     four per product, in order: {p:ID}:holds, {p:ID}:dl, {p:ID}:users, {p:ID}:gate (whose
--          held field, metric.lua, loses the units)
--
-- ARGV     two values per hold: the 1-based index of its product in KEYS (k → KEYS[4k-3..4k]),
--          and the reservation id
--
-- Returns the number of holds dropped; a hold that is already gone is skipped, so repeats are safe.
local n = 0
for i = 1, #ARGV, 2 do
  local k, rid = tonumber(ARGV[i]), ARGV[i + 1]
  local h = redis.call('HGET', KEYS[4 * k - 3], rid)
  if h then
    redis.call('HDEL', KEYS[4 * k - 3], rid)
    redis.call('ZREM', KEYS[4 * k - 2], rid)
    if redis.call('EXISTS', KEYS[4 * k]) == 1 then
      mt_held(KEYS[4 * k], -tonumber(string.match(h, '^(%d+)')))
    end
    n = n + 1
  end
end
return n
