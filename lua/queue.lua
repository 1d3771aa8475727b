-- queue.lua: join, read or count a product's waiting room, in one atomic step with the gate
-- (waitroom.lua, which lua.go puts in front of this file, holds the shared functions).
--
-- KEYS[1]  {p:ID}:gate   hash: opens, closes, qrate, avail (drop fields from gatedrop.lua)
-- KEYS[2..5]  {p:ID}:q, {p:ID}:qt, {p:ID}:qpre, {p:ID}:qseg: the waiting room
-- KEYS[6]  {s:USER}:rate  the shopper's token bucket (another slot; "join" only, else any key)
-- KEYS[7]  {p:ID}:m:<second of ARGV[3]>  the second's counts (metric.lua; any key of the slot
--          when ARGV[8] is "0")
--
-- ARGV[1]  "join" (POST /products/{id}/queue), "get" (GET), or "stats" (the dashboard)
-- ARGV[2]  user id ("" for stats)    ARGV[3]  now (ms, the caller's clock)
-- ARGV[4]  a secret random seed (hex) for the one shuffle at the opening
-- ARGV[5]  ADMISSION_WINDOW (ms)     ARGV[6]  SHOPPER_RATE   ARGV[7]  SHOPPER_BURST
-- ARGV[8]  "1" to count (join and get: a first join counts "qj", and serving is recorded), else "0"
--
-- Returns one of:
--   {"missing"}                 no gate: rebuild it from Postgres, then retry
--   {"no_queue"}                the product has no waiting room (queue_rate 0)
--   {"rate_limited", ms}        join only: the shopper's bucket is empty; nothing changed
--   {"ticket", state, number, ahead, serving, until, opens}   (-1 stands for null)
--   {"none", serving, opens}    get: the caller has no ticket
--   {"stats", opened, joined, serving, admitted, sold_out, opens}
-- A join is idempotent per shopper; a ticket whose admission ran out is replaced by a new
-- number at the back. Joining before the opening gives no number: the opening shuffles.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing'}
end
local G = wr_gate(KEYS[1])
if G.rate <= 0 then
  return {'no_queue'}
end
local op, user, now, seed, window = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local K = {q = KEYS[2], t = KEYS[3], pre = KEYS[4], seg = KEYS[5]}
if op == 'join' then
  local wait = wr_bucket(KEYS[6], now, tonumber(ARGV[6]), tonumber(ARGV[7]))
  if wait > 0 then
    return {'rate_limited', wait}
  end
end
local st = wr_touch(K, now, G, seed)
local opens = G.opens

if op == 'stats' then
  local joined = st.m
  if not st.opened then
    joined = redis.call('LLEN', K.pre)
  end
  -- admitted: numbers reached whose window still runs; reach times grow with the number.
  local lo, hi = 0, st.serving -- the largest number whose window has ended lies in lo..hi
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if wr_reached(K, mid) + window <= now then
      lo = mid
    else
      hi = mid - 1
    end
  end
  local opened, sold = 0, 0
  if st.opened then
    opened = 1
  end
  if st.paused then
    sold = 1
  end
  return {'stats', opened, joined, st.serving, st.serving - lo, sold, opens}
end

local tk = wr_ticket(K, st, user, now, window)
local M = mt_open(KEYS[7], ARGV[8], '')
if op == 'join' and not tk then
  mt_add(M, 'qj')
end
mt_serving(M, st.serving)
if op == 'join' and (not tk or tk.state == 'expired') then
  if not st.opened then
    redis.call('RPUSH', K.pre, user)
    redis.call('HSET', K.t, user, '0:' .. wr_num(now))
  else
    local n = redis.call('HINCRBY', K.q, 'm', 1)
    redis.call('HSET', K.t, user, n .. ':' .. wr_num(now))
    st.m = n
  end
  tk = wr_ticket(K, st, user, now, window)
end
if not tk then
  return {'none', st.serving, opens}
end
return {'ticket', tk.state, tk.number, tk.ahead, st.serving, tk['until'], opens}
