-- queuecast.lua: claim the right to send a product's waiting-room state to its room, at most
-- once per interval, and only when serving or the sold-out state changed (waitroom.lua, put
-- in front of this file by lua.go, holds wr_touch). The touch also lets the queue notice that
-- units came back (a release or an expiry does not touch the queue itself).
--
-- Lambda has no ticker, so the broadcaster keeps a moving queue's viewers up to date by
-- asking for itself again later (a delayed notice). The field "due" says when such a look is
-- already planned, so that a burst of notices plans one, not one each.
--
-- KEYS[1]  {p:ID}:gate    KEYS[2..5]  {p:ID}:q, {p:ID}:qt, {p:ID}:qpre, {p:ID}:qseg
-- KEYS[6]  {p:ID}:qsent   hash: serving, sold (last sent), at (ms of the last claim),
--                         due (ms of the next planned look)
--
-- ARGV[1]  now (ms, the caller's clock)   ARGV[2]  a secret random seed (hex) for the opening
-- ARGV[3]  the least time between two claims (ms)   ARGV[4]  how long qsent lives (ms)
--
-- Returns {outcome, serving, sold (0/1), again}: outcome is "send" (claimed and changed: post
-- {"type":"queue",...} now), "same" (claimed, nothing changed), "wait" (claimed less than
-- ARGV[3] ago) or "none" (no gate, no waiting room, or not open yet); again is the ms after
-- which the caller should look once more (-1: no need, or a look is planned already).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'none', 0, 0, -1}
end
local G = wr_gate(KEYS[1])
if G.rate <= 0 then
  return {'none', 0, 0, -1}
end
local now, interval = tonumber(ARGV[1]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[6], 'serving', 'sold', 'at', 'due')
local at, due = tonumber(s[3] or '0'), tonumber(s[4] or '0')
local function plan(ms)
  if due - now > 250 then
    return -1 -- a look is planned already (its notice may arrive a little early)
  end
  redis.call('HSET', KEYS[6], 'due', now + ms)
  redis.call('PEXPIRE', KEYS[6], math.max(tonumber(ARGV[4]), ms + interval))
  return ms
end
local wait = at + interval - now
if wait > 0 then
  return {'wait', 0, 0, plan(wait)}
end
local K = {q = KEYS[2], t = KEYS[3], pre = KEYS[4], seg = KEYS[5]}
local st = wr_touch(K, now, G, ARGV[2])
if not st.opened then
  if redis.call('LLEN', K.pre) > 0 then
    return {'none', 0, 0, plan(math.min(G.opens - now, 900000))} -- look again at the opening
  end
  return {'none', 0, 0, -1}
end
local sold = 0
if st.paused then
  sold = 1
end
redis.call('HSET', KEYS[6], 'at', now)
redis.call('PEXPIRE', KEYS[6], ARGV[4])
local again = -1
if not st.paused and st.m > st.serving then
  again = plan(interval) -- tickets wait and admission moves
end
if tonumber(s[1] or '-1') == st.serving and tonumber(s[2] or '-1') == sold then
  return {'same', st.serving, sold, again}
end
redis.call('HSET', KEYS[6], 'serving', st.serving, 'sold', sold)
return {'send', st.serving, sold, again}
