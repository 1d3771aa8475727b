-- reserve.lua: take units of one product for one new hold, in one atomic step.
--
-- KEYS[1]  {p:ID}:gate    hash: avail (units reservable now), max (max_per_user), gen (gate generation)
-- KEYS[2]  {p:ID}:holds   hash: reservation id -> "qty:deadline_ms:state:user"
-- KEYS[3]  {p:ID}:dl      zset: reservation id scored by its deadline (ms since epoch)
-- KEYS[4]  {p:ID}:users   hash: user -> units the user holds of this product
-- KEYS[5]  {p:ID}:ver     string: version of this product's available count
-- KEYS[6]  {p:ID}:idem:<user>:<key>   idempotency entry (any key of the slot when ARGV[5] is "")
--
-- ARGV[1]  new reservation id      ARGV[2]  user id         ARGV[3]  quantity (> 0)
-- ARGV[4]  deadline (ms since epoch)
-- ARGV[5]  request hash, "" when the request carries no Idempotency-Key
-- ARGV[6]  idempotency entry lifetime (ms)
--
-- Returns one of:
--   {"ok", available, gen, version}
--   {"replay", rid}                       same key, same request, and its hold is still live
--   {"conflict"}                          same key, another request, hold still live
--   {"out_of_stock", available, seen}
--   {"limit", max_per_user, held, seen}
--     seen is "1" when the Idempotency-Key has an entry whose hold is gone (the key succeeded
--     before: the caller answers from Postgres's record), else "0" (no Postgres read needed)
--   {"missing"}                           no gate for this product: rebuild it from Postgres, then retry
-- An idempotency entry whose hold is gone (released, fulfilled, lost) is stale: the request is
-- treated as new and the caller settles it against Postgres.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing'}
end
local rid, user, qty = ARGV[1], ARGV[2], tonumber(ARGV[3])
local deadline, rhash = ARGV[4], ARGV[5]

local seen = '0'
if rhash ~= '' then
  local e = redis.call('HMGET', KEYS[6], 'hash', 'rid')
  if e[2] then
    seen = '1'
  end
  if e[2] and redis.call('HEXISTS', KEYS[2], e[2]) == 1 then
    if e[1] ~= rhash then
      return {'conflict'}
    end
    return {'replay', e[2]}
  end
end

local g = redis.call('HMGET', KEYS[1], 'avail', 'max', 'gen')
local avail, max = tonumber(g[1]), tonumber(g[2])
if qty > avail then
  return {'out_of_stock', avail, seen}
end
local held = tonumber(redis.call('HGET', KEYS[4], user) or '0')
if held + qty > max then
  return {'limit', max, held, seen}
end

avail = redis.call('HINCRBY', KEYS[1], 'avail', -qty)
redis.call('HINCRBY', KEYS[4], user, qty)
redis.call('HSET', KEYS[2], rid, qty .. ':' .. deadline .. ':reserved:' .. user)
redis.call('ZADD', KEYS[3], deadline, rid)
local ver = redis.call('INCR', KEYS[5])
if rhash ~= '' then
  redis.call('HSET', KEYS[6], 'hash', rhash, 'rid', rid)
  redis.call('PEXPIRE', KEYS[6], ARGV[6])
end
return {'ok', avail, tonumber(g[3]), ver}
