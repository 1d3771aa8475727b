-- waitroom.lua: a library, not a script of its own. lua.go puts it in front of reserve.lua,
-- queue.lua and ratelimit.lua, so that the waiting room and the per-shopper token bucket are
-- computed the same way wherever they are touched. It reads no clock: every function takes
-- now (ms since the epoch, the caller's clock) from its script's ARGV.
--
-- The waiting room of product ID (all keys in the slot {p:ID}):
--   {p:ID}:q     hash: open (ms the queue opened), at (ms of the last touch), p (progress in
--                thousandths of an admission), run ("1" while available > 0), rate (queue_rate
--                in force since at), m (numbers given so far)
--   {p:ID}:qt    hash: user -> "number:joined_ms" (number 0: joined before the opening)
--   {p:ID}:qpre  list: users who joined before the opening, in arrival order
--   {p:ID}:qseg  zset: the breakpoints of progress over time, scored by progress, member
--                "progress:ms:rate" (rate 0 while paused); progress is linear between two
--                breakpoints, so the moment a number was reached is computed, not stored
-- serving = floor(p / 1000). p never runs ahead of m * 1000: a quiet queue banks no admissions.

-- A deterministic generator of uniform integers from the caller's secret seed: L'Ecuyer's
-- MRG32k3a (period 2^191; every product stays below 2^53, so Lua's doubles compute it
-- exactly), its six state words taken from SHA-1 of the seed, and rejection sampling so that
-- every value below n is equally likely. It needs to be unpredictable only until the opening:
-- the seed is drawn from crypto/rand by the caller and never stored, and the shuffle runs once.
local function wr_rng(seed)
  local m1, m2 = 4294967087, 4294944443
  local h = redis.sha1hex(seed .. ':1') .. redis.sha1hex(seed .. ':2')
  local w = {}
  for i = 0, 5 do
    w[i + 1] = tonumber(string.sub(h, 8 * i + 1, 8 * i + 8), 16)
  end
  local s10, s11, s12 = w[1] % m1, w[2] % m1, w[3] % m1
  local s20, s21, s22 = w[4] % m2, w[5] % m2, w[6] % m2
  if s10 + s11 + s12 == 0 then
    s10 = 12345
  end
  if s20 + s21 + s22 == 0 then
    s20 = 12345
  end
  local function mod(x, m)
    local r = x - math.floor(x / m) * m
    if r < 0 then
      r = r + m
    elseif r >= m then
      r = r - m
    end
    return r
  end
  local function draw() -- uniform in 0..m1-1
    local p1 = mod(1403580 * s11 - 810728 * s10, m1)
    s10, s11, s12 = s11, s12, p1
    local p2 = mod(527612 * s22 - 1370589 * s20, m2)
    s20, s21, s22 = s21, s22, p2
    local z = p1 - p2
    if z < 0 then
      z = z + m1
    end
    return z
  end
  return function(n) -- uniform in 0..n-1
    local limit = math.floor(m1 / n) * n
    while true do
      local v = draw()
      if v < limit then
        return v % n
      end
    end
  end
end

local function wr_num(x)
  return string.format('%.0f', x)
end

-- wr_seg records a breakpoint: from progress p at time t, progress grows at rate (0: paused).
-- A breakpoint at the same progress replaces the older one (progress did not move between them).
local function wr_seg(key, p, t, rate)
  redis.call('ZREMRANGEBYSCORE', key, p, p)
  redis.call('ZADD', key, p, wr_num(p) .. ':' .. wr_num(t) .. ':' .. rate)
end

-- wr_reached returns when number n was reached (ms): in the last segment that starts below
-- n * 1000, progress crossed n * 1000 at its own rate.
local function wr_reached(K, n)
  local e = redis.call('ZREVRANGEBYSCORE', K.seg, '(' .. wr_num(n * 1000), '-inf', 'LIMIT', 0, 1)[1]
  if not e then
    return 0
  end
  local p0, t0, r = string.match(e, '^([%d.]+):([%d.]+):([%d.]+)$')
  p0, t0, r = tonumber(p0), tonumber(t0), tonumber(r)
  if r <= 0 then
    return t0
  end
  return t0 + math.ceil((n * 1000 - p0) / r)
end

-- wr_touch brings the waiting room up to now and returns its state:
--   {opened, serving, m, paused, open_ms}
-- G = {opens (ms, or -1: open from creation), rate, avail}. The first touch at or after the
-- opening opens the queue: the pre-queue is shuffled once (Fisher-Yates, seeded by the
-- caller's secret seed) and numbered 1..M; every later touch finds it open. Progress between
-- the last touch and now follows the state of the last touch: it grows at the rate in force
-- while units were available, and stays where it was while available was 0.
local function wr_touch(K, now, G, seed)
  local s = redis.call('HMGET', K.q, 'open', 'at', 'p', 'run', 'rate', 'm')
  if s[1] and G.opens >= 0 and now < G.opens and tonumber(s[1]) ~= G.opens then
    -- The operator moved the opening into the future after the queue opened (or was touched
    -- with no opening set): every ticket waits for the new opening again, unnumbered, and is
    -- shuffled with the others then, so the fair start holds.
    local t = redis.call('HGETALL', K.t)
    redis.call('DEL', K.pre)
    for i = 1, #t, 2 do
      local joined = string.match(t[i + 1], ':(.*)$') or wr_num(now)
      redis.call('RPUSH', K.pre, t[i])
      redis.call('HSET', K.t, t[i], '0:' .. joined)
    end
    redis.call('DEL', K.q, K.seg)
    s = {false}
  end
  if not s[1] then
    if G.opens >= 0 and now < G.opens then
      return {opened = false, serving = 0, m = 0, paused = G.avail <= 0, open_ms = G.opens}
    end
    local start = G.opens
    if start < 0 then
      start = now
    end
    local pre = redis.call('LRANGE', K.pre, 0, -1)
    local below = wr_rng(seed)
    for i = #pre, 2, -1 do
      local j = below(i) + 1
      pre[i], pre[j] = pre[j], pre[i]
    end
    local batch, joined = {}, ':' .. wr_num(start)
    for i, u in ipairs(pre) do
      batch[#batch + 1] = u
      batch[#batch + 1] = i .. joined
      if #batch >= 2000 or i == #pre then
        redis.call('HSET', K.t, unpack(batch))
        batch = {}
      end
    end
    redis.call('DEL', K.pre)
    local run = '0'
    if G.avail > 0 then
      run = '1'
    end
    redis.call('HSET', K.q, 'open', wr_num(start), 'at', wr_num(start), 'p', 0, 'run', run, 'rate', G.rate, 'm', #pre)
    local r0 = 0
    if run == '1' then
      r0 = G.rate
    end
    wr_seg(K.seg, 0, start, r0)
    s = {wr_num(start), wr_num(start), '0', run, tostring(G.rate), tostring(#pre)}
  end
  local at, p, run, rate, m = tonumber(s[2]), tonumber(s[3]), s[4] == '1', tonumber(s[5]), tonumber(s[6])
  local capped = false
  if now > at then
    if run then
      p = p + rate * (now - at)
    end
    at = now
  end
  if p >= m * 1000 then
    p = m * 1000
    capped = run
  end
  local nrun = G.avail > 0
  local nrate = 0
  if nrun then
    nrate = G.rate
  end
  local orate = 0
  if run then
    orate = rate
  end
  if capped or nrate ~= orate then
    wr_seg(K.seg, p, at, nrate)
  end
  local flag = '0'
  if nrun then
    flag = '1'
  end
  redis.call('HSET', K.q, 'at', wr_num(at), 'p', wr_num(p), 'run', flag, 'rate', G.rate)
  return {opened = true, serving = math.floor(p / 1000), m = m, paused = not nrun, open_ms = tonumber(s[1])}
end

-- wr_ticket reads user's ticket against the state st (from wr_touch):
--   nil (no ticket), or {state, number (-1: none yet), ahead (-1: none yet), until (ms, -1: none)}
local function wr_ticket(K, st, user, now, window)
  local v = redis.call('HGET', K.t, user)
  if not v then
    return nil
  end
  local n = tonumber(string.match(v, '^(%d+):'))
  if not st.opened or n == 0 then
    return {state = 'waiting', number = -1, ahead = -1, ['until'] = -1}
  end
  if n > st.serving then
    local state = 'waiting'
    if st.paused then
      state = 'sold_out'
    end
    return {state = state, number = n, ahead = n - st.serving, ['until'] = -1}
  end
  local u = wr_reached(K, n) + window
  if now < u then
    return {state = 'admitted', number = n, ahead = 0, ['until'] = u}
  end
  return {state = 'expired', number = n, ahead = 0, ['until'] = u}
end

-- wr_bucket takes one request from a shopper's token bucket (rate per second, burst tokens;
-- rate 0 or less: no limit). Returns 0, or the ms until a token is there (nothing changed).
local function wr_bucket(key, now, rate, burst)
  if rate <= 0 then
    return 0
  end
  local b = redis.call('HMGET', key, 'tok', 'at')
  local tok, at = tonumber(b[1]), tonumber(b[2])
  if not tok then
    tok, at = burst * 1000, now
  end
  if now > at then
    tok = math.min(burst * 1000, tok + (now - at) * rate)
    at = now
  end
  if tok < 1000 then
    return math.max(1, math.ceil((1000 - tok) / rate))
  end
  redis.call('HSET', key, 'tok', wr_num(tok - 1000), 'at', wr_num(at))
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
  return 0
end

-- wr_gate reads a gate's drop fields: {opens (ms or -1), closes (ms or -1), rate, avail,
-- draw (true for a product sold by draw)}.
local function wr_gate(gate)
  local g = redis.call('HMGET', gate, 'opens', 'closes', 'qrate', 'avail', 'draw')
  return {opens = tonumber(g[1] or '-1') or -1, closes = tonumber(g[2] or '-1') or -1,
    rate = tonumber(g[3] or '0') or 0, avail = tonumber(g[4] or '0') or 0, draw = g[5] == '1'}
end

-- ==== the script ====
