-- checkout.lua: validate a whole cart in one atomic step and, only if every hold passes,
-- mark them all checked out with the payment deadline. All or nothing. (variants.lua, which
-- lua.go puts in front of this file, reads and writes the holds.)
--
-- KEYS     three per product in the cart, in order: {p:ID}:gate, {p:ID}:holds, {p:ID}:dl
--          (a cart spans products, so this script needs a non-cluster Redis or one slot), then,
--          when the caller counts (metric.lua), one more per product in the same order:
--          {p:ID}:m:<second of ARGV[2]>, where a checkout that succeeds counts "co" once
--
-- ARGV[1]  user id (every hold must be this user's)
-- ARGV[2]  now (ms): every hold's deadline must be after it
-- ARGV[3]  payment deadline (ms): the holds' new deadline
-- ARGV[4..] two values per hold: the 1-based index of its product in KEYS (k → KEYS[3k-2..3k]),
--          and the reservation id
--
-- Returns one of:
--   {"ok", n}                   n holds checked out
--   {"failed", id, id, ...}     the holds that are not this user's, live and reserved; nothing changed
--   {"missing", k}              product k has no gate: rebuild it from Postgres, then retry
local user, now, deadline = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local failed = {}
local holds = {}
for i = 4, #ARGV, 2 do
  local k, rid = tonumber(ARGV[i]), ARGV[i + 1]
  if redis.call('EXISTS', KEYS[3 * k - 2]) == 0 then
    return {'missing', k}
  end
  local h = redis.call('HGET', KEYS[3 * k - 1], rid)
  local qty, dl, state, vid, owner
  if h then
    qty, dl, state, vid, owner = vr_parse(h)
  end
  if not h or owner ~= user or state ~= 'reserved' or tonumber(dl) <= now then
    failed[#failed + 1] = rid
  else
    holds[#holds + 1] = {k, rid, qty, vid}
  end
end
if #failed > 0 then
  return {'failed', unpack(failed)}
end
local nproducts = 0
for _, h in ipairs(holds) do
  local k, rid, qty, vid = h[1], h[2], h[3], h[4]
  redis.call('HSET', KEYS[3 * k - 1], rid, vr_hold(qty, deadline, 'checked_out', vid, user))
  redis.call('ZADD', KEYS[3 * k], deadline, rid)
  nproducts = math.max(nproducts, k)
end
if #KEYS > 3 * nproducts then
  for k = 1, nproducts do
    mt_add(KEYS[3 * nproducts + k], 'co')
  end
end
return {'ok', #holds}
