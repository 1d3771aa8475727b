-- reserve.lua: take units of one variant of one product for one new hold, in one atomic step
-- (variants.lua, which lua.go puts in front of this file after waitroom.lua, holds the variant
-- helpers): the sale window, the waiting room, the rate, the variant's stock and max_per_user
-- summed over every variant of the product.
--
-- KEYS[1]  {p:ID}:gate    hash: avail (units reservable now, all variants), vs (the variants),
--                         v:<variant> (per variant, when more than one), max (max_per_user),
--                         gen (gate generation)
-- KEYS[2]  {p:ID}:holds   hash: reservation id -> hold (variants.lua)
-- KEYS[3]  {p:ID}:dl      zset: reservation id scored by its deadline (ms since epoch)
-- KEYS[4]  {p:ID}:users   hash: user -> units of this product the user holds or bought (paid or
--                         fulfilled): what max_per_user caps over the whole sale
-- KEYS[5]  {p:ID}:ver     string: version of this product's available count
-- KEYS[6]  {p:ID}:idem:<user>:<key>   idempotency entry (any key of the slot when ARGV[5] is "")
-- KEYS[7..10]  {p:ID}:q, {p:ID}:qt, {p:ID}:qpre, {p:ID}:qseg: the waiting room (waitroom.lua)
-- KEYS[11] {s:USER}:rate  the shopper's token bucket (another slot: this script runs on the
--          non-cluster Redis the stack deploys, as checkout.lua and join.lua do)
--
-- ARGV[1]  new reservation id      ARGV[2]  user id         ARGV[3]  quantity (> 0)
-- ARGV[4]  deadline (ms since epoch)
-- ARGV[5]  request hash, "" when the request carries no Idempotency-Key
-- ARGV[6]  idempotency entry lifetime (ms)
-- ARGV[7]  now (ms since epoch, the caller's clock)
-- ARGV[8]  a secret random seed (hex) for the waiting room's one shuffle at the opening
-- ARGV[9]  ADMISSION_WINDOW (ms)
-- ARGV[10] SHOPPER_RATE (requests per second; 0: no limit)   ARGV[11] SHOPPER_BURST
-- ARGV[12] "1" to take a token from the bucket, "0" for a retry of the same request
-- ARGV[13] variant id, "" for the product's one variant
--
-- Drop fields of the gate hash (set by gatedrop.lua with the rebuild): opens, closes (ms),
-- qrate (queue_rate; 0 or absent: no waiting room).
--
-- Returns one of:
--   {"ok", available, gen, version, variant}   available: the product's, after the hold
--   {"no_variant"}                        the product has no such variant
--   {"need_variant"}                      ARGV[13] is "" but the product has more than one variant
--   {"replay", rid}                       same key, same request, and its hold is still live
--   {"conflict"}                          same key, another request, hold still live
--   {"out_of_stock", available}         available: the variant's
--   {"limit", max_per_user, held}
--     (a keyed refusal is checked against Postgres by the caller: after a failover to an
--     older copy, Redis may not know that the key was answered 201 before)
--   {"missing"}                           no gate for this product: rebuild it from Postgres, then retry
--   {"rate_limited", ms}                  the shopper's bucket is empty: retry after ms; nothing changed
--   {"not_open", "opens"|"closes"}        before the opening or after the close
--   {"not_admitted", ahead}               the product has a waiting room and the caller holds no
--                                         admitted ticket; ahead is -1 before the opening; or the
--                                         product is sold by draw (gate field draw, ahead -1)
-- Order of the checks: gate, rate, idempotency replay, variant, sale window, admission, stock,
-- limit.
-- An idempotency entry whose hold is gone (released, fulfilled, lost) is stale: the request is
-- treated as new and the caller settles it against Postgres.
local vs = redis.call('HGET', KEYS[1], 'vs')
if not vs then
  return {'missing'} -- no gate, or one from before variants
end
local rid, user, qty = ARGV[1], ARGV[2], tonumber(ARGV[3])
local deadline, rhash = ARGV[4], ARGV[5]
local now = tonumber(ARGV[7])

if ARGV[12] == '1' then
  local wait = wr_bucket(KEYS[11], now, tonumber(ARGV[10]), tonumber(ARGV[11]))
  if wait > 0 then
    return {'rate_limited', wait}
  end
end

if rhash ~= '' then
  local e = redis.call('HMGET', KEYS[6], 'hash', 'rid')
  if e[2] and redis.call('HEXISTS', KEYS[2], e[2]) == 1 then
    if e[1] ~= rhash then
      return {'conflict'}
    end
    return {'replay', e[2]}
  end
end

local multi, vid = vr_multi(vs), ARGV[13]
if vid == '' then
  if multi then
    return {'need_variant'}
  end
  vid = vs
elseif not multi and vid ~= vs then
  return {'no_variant'}
end
local g = redis.call('HMGET', KEYS[1], vr_field(multi, vid), 'max', 'gen')
if not g[1] then
  return {'no_variant'}
end

local G = wr_gate(KEYS[1])
if G.draw then
  return {'not_admitted', -1} -- a draw's units go only to its entries' offers (offer.lua)
end
if G.opens >= 0 and now < G.opens then
  return {'not_open', 'opens'}
end
if G.closes >= 0 and now >= G.closes then
  return {'not_open', 'closes'}
end
local WR = {q = KEYS[7], t = KEYS[8], pre = KEYS[9], seg = KEYS[10]}
if G.rate > 0 then
  local st = wr_touch(WR, now, G, ARGV[8])
  local tk = wr_ticket(WR, st, user, now, tonumber(ARGV[9]))
  if not tk or tk.state ~= 'admitted' then
    local ahead = -1
    if st.opened then
      ahead = st.m - st.serving
      if tk and tk.state ~= 'expired' then
        ahead = tk.ahead
      end
    end
    return {'not_admitted', ahead}
  end
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
local ver = redis.call('INCR', KEYS[5])
if G.rate > 0 and avail <= 0 then
  G.avail = avail
  wr_touch(WR, now, G, ARGV[8]) -- sold out: the queue pauses from this moment
end
if rhash ~= '' then
  redis.call('HSET', KEYS[6], 'hash', rhash, 'rid', rid)
  redis.call('PEXPIRE', KEYS[6], ARGV[6])
end
return {'ok', avail, tonumber(g[3]), ver, vid}
