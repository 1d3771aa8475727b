-- broadcast.lua: claim the right to broadcast a product's current available units to its room,
-- at most once per version and at most once per interval, and read what to send in the same
-- atomic step (so that available and version always belong together).
--
-- KEYS[1]  {p:ID}:gate    hash: avail (units reservable now), vs and v:<id> (variants.lua)
-- KEYS[2]  {p:ID}:ver     string: version of the product's available count
-- KEYS[3]  {p:ID}:sent    hash: ver (last version broadcast), at (when, ms)
--
-- ARGV[1]  now (ms)
-- ARGV[2]  the least time between two broadcasts of the product (ms)
-- ARGV[3]  how long the sent marker lives (ms): after it, a redelivered notice broadcasts again
--
-- Returns one of:
--   {"send", available, version, id_1, available_1, ..., id_n, available_n}
--                                  claimed: post this to the room now (every variant's units)
--   {"wait", ms}                   a broadcast went out less than ARGV[2] ago: ask again in ms
--   {"skip", version}              this version (or a newer one) was broadcast already
--   {"missing"}                    no gate (being rebuilt, or one from before variants): the
--                                  rebuild sends its own notice
local vs = redis.call('HGET', KEYS[1], 'vs')
if not vs then
  return {'missing'}
end
local avail = tonumber(redis.call('HGET', KEYS[1], 'avail'))
local ver = tonumber(redis.call('GET', KEYS[2]) or '0')
local s = redis.call('HMGET', KEYS[3], 'ver', 'at')
local sent, at = tonumber(s[1] or '-1'), tonumber(s[2] or '0')
if ver <= sent then
  return {'skip', sent}
end
local now = tonumber(ARGV[1])
local wait = at + tonumber(ARGV[2]) - now
if wait > 0 then
  return {'wait', wait}
end
redis.call('HSET', KEYS[3], 'ver', ver, 'at', now)
redis.call('PEXPIRE', KEYS[3], ARGV[3])
local out = {'send', avail, ver}
if not vr_multi(vs) then
  out[4], out[5] = vs, avail
  return out
end
for vid in string.gmatch(vs, '[^,]+') do
  out[#out + 1] = vid
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[1], 'v:' .. vid) or '0')
end
return out
