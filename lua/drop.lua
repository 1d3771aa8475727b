-- drop.lua: forget fulfilled holds without giving their units back: the units left stock on
-- hand in Postgres, so available (stock minus held) does not change. The shopper's count in
-- {p:ID}:users keeps them: bought units count against max_per_user over the whole sale (a
-- rebuild counts them again from Postgres's fulfilled holds).
--
-- KEYS     three per product, in order: {p:ID}:holds, {p:ID}:dl, {p:ID}:users
--
-- ARGV     two values per hold: the 1-based index of its product in KEYS (k → KEYS[3k-2..3k]),
--          and the reservation id
--
-- Returns the number of holds dropped; a hold that is already gone is skipped, so repeats are safe.
local n = 0
for i = 1, #ARGV, 2 do
  local k, rid = tonumber(ARGV[i]), ARGV[i + 1]
  local h = redis.call('HGET', KEYS[3 * k - 2], rid)
  if h then
    redis.call('HDEL', KEYS[3 * k - 2], rid)
    redis.call('ZREM', KEYS[3 * k - 1], rid)
    n = n + 1
  end
end
return n
