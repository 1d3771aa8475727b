-- join.lua: put a connection into a product's room and the room into the connection's set,
-- in one atomic step, enforcing the per-connection room limit.
--
-- KEYS[1]  {c:CONNID}:rooms  set: the products whose rooms the connection is in
-- KEYS[2]  {p:ID}:room       zset: connection ids scored by when the connection must be gone (ms)
-- KEYS[3]  {c:CONNID}:gone   set by Remove ($disconnect): the connection is closed
--
-- ARGV[1]  connection id            ARGV[2]  product id
-- ARGV[3]  the connection's end (ms since epoch, the caller's clock): the member's score
-- ARGV[4]  now (ms since epoch, the caller's clock): members scored at or below it are pruned
-- ARGV[5]  time to live (ms), relative: the connection's end minus now (> 0)
-- ARGV[6]  the most rooms one connection may be in
--
-- Returns {"ok"}, {"too_many"} or {"gone"} (nothing changed either way): a subscribe that API
-- Gateway delivers after the connection's $disconnect must not put it back in a room.
--
-- The two keys live in different hash slots: this runs on the non-cluster Redis the stack
-- deploys (as checkout.lua does). Expiries are relative (PEXPIRE), never an absolute time
-- computed from the caller's clock, which the server's own clock would judge.
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {'gone'}
end
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 0 and redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[6]) then
  return {'too_many'}
end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
-- The room lives as long as its longest-lived member: set an expiry where there is none,
-- else only ever push it later.
redis.call('PEXPIRE', KEYS[2], ARGV[5], 'NX')
redis.call('PEXPIRE', KEYS[2], ARGV[5], 'GT')
return {'ok'}
