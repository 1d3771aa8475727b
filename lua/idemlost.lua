-- idemlost.lua: before a rebuild, mark a product whose Redis state was lost, so that its
-- Idempotency-Key entries (lost with it) are looked up in Postgres for as long as they live.
--
-- KEYS[1]  {p:ID}:ver       the product's live-stock version: absent only when Redis lost the
--                           product's keys (an admin change keeps it) or the gate never existed
-- KEYS[2]  {p:ID}:idemlost  the mark
--
-- ARGV[1]  how long idempotency entries live (ms): the mark's relative lifetime
--
-- Called (in the rebuild's MULTI, before rebuild.lua) only for a product that ever had a hold
-- in Postgres: a new product's first gate needs no mark, and its sold-out answers stay
-- Redis-only. Returns 1 when it set the mark, else 0.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return 1
