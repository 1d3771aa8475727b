-- uncheckout.lua: put checked-out holds back to reserved with their original deadlines, when
-- the payment could not be started (the checkout's compensation). (variants.lua, which lua.go
-- puts in front of this file, reads and writes the holds.)
--
-- KEYS     two per product, in order: {p:ID}:holds, {p:ID}:dl
--
-- ARGV     three values per hold: the 1-based index of its product in KEYS (k → KEYS[2k-1..2k]),
--          the reservation id, and its original deadline (ms)
--
-- Returns the number of holds put back. A hold that is gone or not checked out is left alone.
local n = 0
for i = 1, #ARGV, 3 do
  local k, rid, dl = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2]
  local h = redis.call('HGET', KEYS[2 * k - 1], rid)
  if h then
    local qty, _, state, vid, user = vr_parse(h)
    if state == 'checked_out' then
      redis.call('HSET', KEYS[2 * k - 1], rid, vr_hold(qty, dl, 'reserved', vid, user))
      redis.call('ZADD', KEYS[2 * k], dl, rid)
      n = n + 1
    end
  end
end
return n
