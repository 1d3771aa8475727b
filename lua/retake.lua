-- retake.lua: take an expired order's units again, all or nothing, when its payment succeeded
-- after the payment deadline. The holds come back checked out; max_per_user does not apply
-- (the shopper has paid). Units are counted per variant (variants.lua, which lua.go puts in
-- front of this file).
--
-- KEYS     five per product, in order: {p:ID}:gate, {p:ID}:holds, {p:ID}:dl, {p:ID}:users, {p:ID}:ver
--
-- ARGV[1]  user id
-- ARGV[2]  the holds' deadline (ms)
-- ARGV[3..] four values per hold: the 1-based index of its product in KEYS (k → KEYS[5k-4..5k]),
--          the reservation id, the quantity, and the variant id
--
-- Returns one of:
--   {"ok", gen_1, ..., gen_n}     the generation of each product's gate, in KEYS order
--   {"out_of_stock", k, available}   available: the short variant's
--   {"missing", k}                product k has no gate (or one from before variants): rebuild
--                                 it, then retry
-- A hold still in the gate (its release never ran) keeps its units and is not taken twice.
local user, deadline = ARGV[1], ARGV[2]
local need, multi = {}, {}
local nproducts = #KEYS / 5
for k = 1, nproducts do
  local vs = redis.call('HGET', KEYS[5 * k - 4], 'vs')
  if not vs then
    return {'missing', k}
  end
  multi[k] = vr_multi(vs)
  need[k] = {}
end
local any = {}
for i = 3, #ARGV, 4 do
  local k, rid, qty, vid = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  if redis.call('HEXISTS', KEYS[5 * k - 3], rid) == 0 then
    local f = vr_field(multi[k], vid)
    need[k][f] = (need[k][f] or 0) + qty
    any[k] = true
  end
end
for k = 1, nproducts do
  for f, n in pairs(need[k]) do
    local avail = tonumber(redis.call('HGET', KEYS[5 * k - 4], f) or '0')
    if n > avail then
      return {'out_of_stock', k, avail}
    end
  end
end
for i = 3, #ARGV, 4 do
  local k, rid, qty, vid = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  if redis.call('HEXISTS', KEYS[5 * k - 3], rid) == 0 then
    vr_add(KEYS[5 * k - 4], multi[k], vid, -qty)
    mt_held(KEYS[5 * k - 4], qty)
    redis.call('HINCRBY', KEYS[5 * k - 1], user, qty)
  end
  redis.call('HSET', KEYS[5 * k - 3], rid, vr_hold(qty, deadline, 'checked_out', vid, user))
  redis.call('ZADD', KEYS[5 * k - 2], deadline, rid)
end
local gens = {'ok'}
for k = 1, nproducts do
  if any[k] then
    redis.call('INCR', KEYS[5 * k])
  end
  gens[#gens + 1] = tonumber(redis.call('HGET', KEYS[5 * k - 4], 'gen'))
end
return gens
