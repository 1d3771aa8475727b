-- drawcast.lua: claim the right to send a draw's counts to its room, at most once per interval
-- and only when they changed since the last message (the sweep and every backfill write them
-- with stock.Gate.DrawChanged).
--
-- KEYS[1]  {p:ID}:draw    hash: won, waitlisted (the counts now), seq (grows with each write)
-- KEYS[2]  {p:ID}:dsent   hash: seq (the last one sent), at (ms it was sent)
--
-- ARGV[1]  now (ms, the caller's clock)   ARGV[2]  the least time between two messages (ms)
-- ARGV[3]  how long dsent lives (ms)
--
-- Returns {"send", won, waitlisted} (claimed: post it now), {"same"} (sent already),
-- {"wait", ms} (one went out less than ARGV[2] ago: look again after ms) or {"none"} (no counts).
local c = redis.call('HMGET', KEYS[1], 'won', 'waitlisted', 'seq')
if not c[3] then
  return {'none'}
end
local s = redis.call('HMGET', KEYS[2], 'seq', 'at')
if s[1] == c[3] then
  return {'same'}
end
local now, interval = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait = tonumber(s[2] or '0') + interval - now
if wait > 0 then
  return {'wait', wait}
end
redis.call('HSET', KEYS[2], 'seq', c[3], 'at', now)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {'send', tonumber(c[1]), tonumber(c[2])}
