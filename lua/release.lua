-- release.lua: end one hold and give its units back to its variant's available, exactly once
-- (variants.lua, which lua.go puts in front of this file, reads the hold).
--
-- KEYS[1]  {p:ID}:gate    KEYS[2]  {p:ID}:holds    KEYS[3]  {p:ID}:dl
-- KEYS[4]  {p:ID}:users   KEYS[5]  {p:ID}:ver
-- KEYS[6]  {p:ID}:idem:<user>:<key> to forget with the hold (any key of the slot when ARGV[2] is "0")
-- KEYS[7]  {p:ID}:m:<second>  the second's counts (metric.lua; any key of the slot when ARGV[5] is "")
--
-- ARGV[1]  reservation id
-- ARGV[2]  "1" to delete KEYS[6] when it still points at this hold (undoing a failed reserve), else "0"
-- ARGV[3]  the deadline (ms) the caller knows the hold by, or "" for any: a hold whose deadline
--          changed since (checked out, taken again by a late payment) is not the caller's to end
-- ARGV[4]  "1" when Postgres has just ended the hold from reserved with deadline ARGV[3] (a
--          compare-and-set): a checked-out mark under another deadline is then a checkout whose
--          order can never be recorded (its insert needs the hold reserved), so it is released
--          too; "0" otherwise. A hold of a late payment's retake is never reserved in Postgres.
-- ARGV[5]  what a release by this call counts in KEYS[7]: "rel" (a shopper's release), "exp" (an
--          expiry), "undo" (a reserve Postgres refused: its "ok" is taken back), "-" (nothing, but
--          available and held are recorded), or "" (counting off)
--
-- Returns one of:
--   {"released", qty, available, version}
--   {"absent"}     the gate has no such hold (already released, or never counted by this gate),
--                  or it has another deadline than ARGV[3] (and is not a doomed checkout, ARGV[4])
--   {"missing"}    no gate for this product, or one from before variants (the next rebuild
--                  counts from Postgres)
-- Only the call that removes the hold gives units back, so any number of callers is safe.
local vs = redis.call('HGET', KEYS[1], 'vs')
if not vs then
  return {'missing'}
end
local rid = ARGV[1]
local h = redis.call('HGET', KEYS[2], rid)
if not h then
  return {'absent'}
end
local qty, dl, state, vid, user = vr_parse(h)
if ARGV[3] ~= '' and dl ~= ARGV[3] and not (ARGV[4] == '1' and state == 'checked_out') then
  return {'absent'}
end
qty = tonumber(qty)
redis.call('HDEL', KEYS[2], rid)
redis.call('ZREM', KEYS[3], rid)
if redis.call('HINCRBY', KEYS[4], user, -qty) <= 0 then
  redis.call('HDEL', KEYS[4], user)
end
local avail = vr_add(KEYS[1], vr_multi(vs), vid, qty)
local gheld = mt_held(KEYS[1], -qty)
if ARGV[5] ~= '' then
  local M = KEYS[7]
  if ARGV[5] == 'undo' then
    mt_add(M, 'ok', -1)
  elseif ARGV[5] ~= '-' then
    mt_add(M, ARGV[5])
  end
  mt_level(M, avail, gheld, avail - qty, gheld + qty, nil, 0)
end
local ver = redis.call('INCR', KEYS[5])
if ARGV[2] == '1' and redis.call('HGET', KEYS[6], 'rid') == rid then
  redis.call('DEL', KEYS[6])
end
return {'released', qty, avail, ver}
