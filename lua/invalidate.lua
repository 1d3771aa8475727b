-- invalidate.lua: drop a product's gate so that the next use rebuilds it from Postgres.
--
-- KEYS[1]  {p:ID}:gate    KEYS[2]  {p:ID}:holds    KEYS[3]  {p:ID}:dl    KEYS[4]  {p:ID}:users
--
-- ARGV[1]  the generation to drop: the gate is dropped only while it still has a generation
--          below this one ("" drops whatever is there).
--
-- Returns 1 when a gate was dropped, 0 when there was none or a newer one.
-- Idempotency entries and the version are kept: they outlive any one gate.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[1] ~= '' and tonumber(redis.call('HGET', KEYS[1], 'gen')) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return 1
