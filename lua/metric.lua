-- metric.lua: a library, not a script of its own. lua.go puts it in front of the scripts that
-- count a product's sale second by second for the control room (docs/control-room.md), so that
-- every script writes the same fields the same way. The counts are not the ledger: losing them
-- with Redis loses the chart, never a unit or an order.
--
-- One hash per product and second, {p:ID}:m:<unix second of the caller's clock>, in the slot of
-- the product's gate, living MT_TTL from its first write (a relative PEXPIRE, never EXPIREAT):
--   ok oos lim na no rl   reserve answers: ok, out_of_stock, limit_exceeded, not_admitted,
--                         not_open, rate_limited
--   rel exp co paid qj    holds released, holds expired, checkouts, paid orders, shoppers who
--                         joined the waiting room for the first time
--   av hd sv              available, held and serving as the second's last change left them
--   b0                    "available:held" before the second's first change of them
--   so                    the first moment (ms) in the second at which available reached 0
--   l<i>                  reserve latencies in bucket i: (2^((i-1)/4), 2^(i/4)] microseconds
-- A script that does not count gets M = nil from mt_open, and every mt_ function is a no-op.

-- MT_TTL is how long (ms) a second's counts live: 15 minutes and one. The TTL is set by the
-- write that creates a field of the hash (every write reports whether it did), so the write
-- that creates the key always sets it, and the many writes of a busy second cost no PEXPIRE.
local MT_TTL = 960000

-- mt_fresh sets the TTL when a write created a field (its reply says so).
local function mt_fresh(M, created)
  if created then
    redis.call('PEXPIRE', M, MT_TTL)
  end
end

-- mt_open returns the second's key when on is "1" (else nil) and records the latency samples
-- the caller carried ("i:n,i:n": n latencies in bucket i, measured by earlier calls).
local function mt_open(key, on, samples)
  if on ~= '1' then
    return nil
  end
  if samples and samples ~= '' then
    for i, n in string.gmatch(samples, '(%d+):(%d+)') do
      mt_fresh(key, redis.call('HINCRBY', key, 'l' .. i, n) == tonumber(n))
    end
  end
  return key
end

-- mt_add counts n events (1 when nil) of a field.
local function mt_add(M, field, n)
  if M then
    n = n or 1
    mt_fresh(M, redis.call('HINCRBY', M, field, n) == n)
  end
end

-- mt_level records available and held after a change (and before it, at the second's first
-- change), serving when known (nil: not touched), and the moment available reached 0.
local function mt_level(M, avail, held, before_avail, before_held, serving, now)
  if not M then
    return
  end
  local created
  if serving then
    created = redis.call('HSET', M, 'av', avail, 'hd', held, 'sv', serving)
  else
    created = redis.call('HSET', M, 'av', avail, 'hd', held)
  end
  if created >= 2 then -- the second's first change
    redis.call('HSET', M, 'b0', before_avail .. ':' .. before_held)
    mt_fresh(M, true)
  end
  if avail <= 0 and before_avail > 0 then
    redis.call('HSETNX', M, 'so', now)
  end
end

-- mt_serving records the waiting room's serving number.
local function mt_serving(M, serving)
  if M then
    mt_fresh(M, redis.call('HSET', M, 'sv', serving) == 1)
  end
end

-- mt_held moves the gate's held units (field held: units in the gate's holds) by d and
-- returns the new value. Kept whether or not the caller counts; a rebuild sets it afresh.
local function mt_held(gate, d)
  return redis.call('HINCRBY', gate, 'held', d)
end

-- ==== the script ====
