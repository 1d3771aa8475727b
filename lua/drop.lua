-- drop.lua: forget fulfilled holds without giving their units back: the units left stock on
-- hand in Postgres, so available (stock minus held) does not change. The shopper's count in
-- {p:ID}:users keeps them: bought units count against max_per_user over the whole sale (a
-- rebuild counts them again from Postgres's fulfilled holds).
--
-- KEYS     five per product, in order: {p:ID}:holds, {p:ID}:dl, {p:ID}:users, {p:ID}:gate (whose
--          held field, metric.lua, loses the units), {p:ID}:m:<second> (the counts of the caller's
--          second, where available and held are recorded; any key of the slot when ARGV[1] is "0")
--
-- ARGV[1]  "1" to record available and held in the second's counts, "0" not to
-- ARGV[2..] two values per hold: the 1-based index of its product in KEYS (k → KEYS[5k-4..5k]),
--          and the reservation id
--
-- Returns the number of holds dropped; a hold that is already gone is skipped, so repeats are safe.
local n = 0
for i = 2, #ARGV, 2 do
  local k, rid = tonumber(ARGV[i]), ARGV[i + 1]
  local h = redis.call('HGET', KEYS[5 * k - 4], rid)
  if h then
    redis.call('HDEL', KEYS[5 * k - 4], rid)
    redis.call('ZREM', KEYS[5 * k - 3], rid)
    local gate = KEYS[5 * k - 1]
    if redis.call('EXISTS', gate) == 1 then
      local qty = tonumber(string.match(h, '^(%d+)'))
      local held = mt_held(gate, -qty)
      if ARGV[1] == '1' then
        local avail = tonumber(redis.call('HGET', gate, 'avail') or '0')
        mt_level(KEYS[5 * k], avail, held, avail, held + qty, nil, 0)
      end
    end
    n = n + 1
  end
end
return n
