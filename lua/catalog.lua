-- catalog.lua: write products' shopper-facing details into the catalog, newest generation wins.
--
-- KEYS[1]  {catalog}   hash: product id -> "gen|json" (the Product as shoppers see it, without
--                      available), plus the field ".complete" once every product was written
--
-- ARGV[1]  "1" when the products given are every product Postgres has (marks the catalog
--          complete, so a product it lacks is unknown), "0" for some of them
-- ARGV[2..] three values per product: id, gate generation, JSON
--
-- An entry is replaced only by one of the same or a newer generation (every admin change bumps
-- it in Postgres), so a writer that read Postgres earlier never undoes a later admin change.
-- Returns the number of entries written.
local written = 0
for i = 2, #ARGV, 3 do
  local id, gen, json = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local cur = redis.call('HGET', KEYS[1], id)
  local curgen = cur and tonumber(string.match(cur, '^(%d+)|')) or -1
  if gen >= curgen then
    redis.call('HSET', KEYS[1], id, gen .. '|' .. json)
    written = written + 1
  end
end
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], '.complete', '1')
end
return written
