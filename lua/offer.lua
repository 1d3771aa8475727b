-- offer.lua: make one draw offer, a hold of one variant for one entrant, in one atomic step
-- (after variants.lua). It is reserve.lua without what a draw's offer must not see: the sale
-- window (offers are made after the entry period closed), the waiting room, the shopper's rate
-- and Idempotency-Keys. The variant's stock and max_per_user over every variant are checked as
-- for any hold. The hold id is derived from the entry, so the same offer made twice (a sweep
-- that died after this script and before Postgres recorded the hold, then the next sweep) takes
-- its units once.
--
-- KEYS[1]  {p:ID}:gate    KEYS[2] {p:ID}:holds   KEYS[3] {p:ID}:dl   KEYS[4] {p:ID}:users
-- KEYS[5]  {p:ID}:ver     (as in reserve.lua)
--
-- ARGV[1]  reservation id (the entry's offer id)   ARGV[2] user id   ARGV[3] quantity (> 0)
-- ARGV[4]  deadline (ms since epoch)               ARGV[5] variant id
--
-- Returns one of:
--   {"ok", available, gen, version}    available: the product's, after the hold
--   {"replay", gen}                    a hold with this id exists: nothing taken again
--   {"no_variant"}                     the product has no such variant
--   {"out_of_stock", available}        available: the variant's
--   {"limit", max_per_user, held}
--   {"missing"}                        no gate: rebuild it from Postgres, then retry
local vs = redis.call('HGET', KEYS[1], 'vs')
if not vs then
  return {'missing'}
end
local rid, user, qty, deadline, vid = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
if redis.call('HEXISTS', KEYS[2], rid) == 1 then
  return {'replay', tonumber(redis.call('HGET', KEYS[1], 'gen'))}
end
local multi = vr_multi(vs)
if not multi and vid ~= vs then
  return {'no_variant'}
end
local g = redis.call('HMGET', KEYS[1], vr_field(multi, vid), 'max', 'gen')
if not g[1] then
  return {'no_variant'}
end
local avail, max = tonumber(g[1]), tonumber(g[2])
if qty > avail then
  return {'out_of_stock', avail}
end
local held = tonumber(redis.call('HGET', KEYS[4], user) or '0')
if held + qty > max then
  return {'limit', max, held}
end
avail = vr_add(KEYS[1], multi, vid, -qty)
redis.call('HINCRBY', KEYS[4], user, qty)
redis.call('HSET', KEYS[2], rid, vr_hold(qty, deadline, 'reserved', vid, user))
redis.call('ZADD', KEYS[3], deadline, rid)
mt_held(KEYS[1], qty)
local ver = redis.call('INCR', KEYS[5])
return {'ok', avail, tonumber(g[3]), ver}
