-- retake.lua: take an expired order's units again, all or nothing, when its payment succeeded
-- after the payment deadline. The holds come back checked out; max_per_user does not apply
-- (the shopper has paid).
--
-- KEYS     five per product, in order: {p:ID}:gate, {p:ID}:holds, {p:ID}:dl, {p:ID}:users, {p:ID}:ver
--
-- ARGV[1]  user id
-- ARGV[2]  the holds' deadline (ms)
-- ARGV[3..] three values per hold: the 1-based index of its product in KEYS (k → KEYS[5k-4..5k]),
--          the reservation id, and the quantity
--
-- Returns one of:
--   {"ok", gen_1, ..., gen_n}     the generation of each product's gate, in KEYS order
--   {"out_of_stock", k, available}
--   {"missing", k}                product k has no gate: rebuild it, then retry
-- A hold still in the gate (its release never ran) keeps its units and is not taken twice.
local user, deadline = ARGV[1], ARGV[2]
local need = {}
local nproducts = #KEYS / 5
for k = 1, nproducts do
  if redis.call('EXISTS', KEYS[5 * k - 4]) == 0 then
    return {'missing', k}
  end
  need[k] = 0
end
for i = 3, #ARGV, 3 do
  local k, rid, qty = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
  if redis.call('HEXISTS', KEYS[5 * k - 3], rid) == 0 then
    need[k] = need[k] + qty
  end
end
for k = 1, nproducts do
  local avail = tonumber(redis.call('HGET', KEYS[5 * k - 4], 'avail'))
  if need[k] > avail then
    return {'out_of_stock', k, avail}
  end
end
for i = 3, #ARGV, 3 do
  local k, rid, qty = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
  if redis.call('HEXISTS', KEYS[5 * k - 3], rid) == 0 then
    redis.call('HINCRBY', KEYS[5 * k - 4], 'avail', -qty)
    redis.call('HINCRBY', KEYS[5 * k - 1], user, qty)
  end
  redis.call('HSET', KEYS[5 * k - 3], rid, qty .. ':' .. deadline .. ':checked_out:' .. user)
  redis.call('ZADD', KEYS[5 * k - 2], deadline, rid)
end
local gens = {'ok'}
for k = 1, nproducts do
  if need[k] > 0 then
    redis.call('INCR', KEYS[5 * k])
  end
  gens[#gens + 1] = tonumber(redis.call('HGET', KEYS[5 * k - 4], 'gen'))
end
return gens
