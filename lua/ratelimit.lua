-- ratelimit.lua: take one request from a shopper's token bucket (waitroom.lua, put in front
-- of this file by lua.go, holds wr_bucket). Used by POST /checkout; reserve.lua and queue.lua
-- take their token in their own round trip.
--
-- KEYS[1]  {s:USER}:rate   hash: tok (thousandths of a token), at (ms of the last refill)
--
-- ARGV[1]  now (ms, the caller's clock)   ARGV[2]  rate (tokens per second)   ARGV[3]  burst
--
-- Returns 0 when the request may go on, else the ms until a token is there (nothing changed).
return wr_bucket(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
