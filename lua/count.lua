-- count.lua: count events of one product's second that happen on no other script's round trip
-- (a paid order: the webhook talks to Postgres and Stripe, not to the gate). metric.lua, which
-- lua.go puts in front of this file, says what the fields mean.
--
-- KEYS[1]  {p:ID}:m:<second>   the second's counts
-- ARGV[1]  the field ("paid")   ARGV[2]  how many
--
-- Returns the field's count in that second.
mt_add(KEYS[1], ARGV[1], tonumber(ARGV[2]))
return tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
