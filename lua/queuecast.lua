-- queuecast.lua: claim the right to send a product's waiting-room state to its room, at most
-- once per interval, and only when serving or the sold-out state changed (waitroom.lua, put
-- in front of this file by lua.go, holds wr_touch). The touch also lets the queue notice that
-- units came back (a release or an expiry does not touch the queue itself).
--
-- KEYS[1]  {p:ID}:gate    KEYS[2..5]  {p:ID}:q, {p:ID}:qt, {p:ID}:qpre, {p:ID}:qseg
-- KEYS[6]  {p:ID}:qsent   hash: serving, sold (last sent), at (ms of the last claim)
--
-- ARGV[1]  now (ms, the caller's clock)   ARGV[2]  a secret random seed (hex) for the opening
-- ARGV[3]  the least time between two claims (ms)   ARGV[4]  how long qsent lives (ms)
--
-- Returns one of:
--   {"none"}                          no gate, no waiting room, or not open yet: nothing to send
--   {"wait", ms}                      a claim was made less than ARGV[3] ago (its caller goes on)
--   {"send", serving, sold, active}   claimed, and changed: post {"type":"queue",...} now
--   {"same", active}                  claimed, nothing changed
-- active is 1 while tickets wait and admission moves: the caller looks again in ARGV[3] ms,
-- which is how serving reaches viewers without a ticker.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'none'}
end
local G = wr_gate(KEYS[1])
if G.rate <= 0 then
  return {'none'}
end
local now = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[6], 'serving', 'sold', 'at')
local at = tonumber(s[3] or '0')
local wait = at + tonumber(ARGV[3]) - now
if wait > 0 then
  return {'wait', wait}
end
local K = {q = KEYS[2], t = KEYS[3], pre = KEYS[4], seg = KEYS[5]}
local st = wr_touch(K, now, G, ARGV[2])
if not st.opened then
  return {'none'}
end
local sold = 0
if st.paused then
  sold = 1
end
local active = 0
if not st.paused and st.m > st.serving then
  active = 1
end
redis.call('HSET', KEYS[6], 'at', now)
redis.call('PEXPIRE', KEYS[6], ARGV[4])
if tonumber(s[1] or '-1') == st.serving and tonumber(s[2] or '-1') == sold then
  return {'same', active}
end
redis.call('HSET', KEYS[6], 'serving', st.serving, 'sold', sold)
return {'send', st.serving, sold, active}
