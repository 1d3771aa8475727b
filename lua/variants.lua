-- variants.lua: a library, not a script of its own. lua.go puts it in front of every script
-- that reads or changes a product's available units per variant, so that a hold and a gate's
-- variants are read and written the same way everywhere.
--
-- A product has 1..100 variants (sizes). Its gate ({p:ID}:gate) keeps:
--   vs      the variant ids, comma-separated, in the product's order. A gate without vs was
--           set before variants existed: every script treats it as absent (rebuilt from Postgres).
--   avail   units reservable now, summed over the variants (the waiting room, the product reads
--           and the live stock total read only this field)
--   v:<id>  one variant's units reservable now, only when the product has more than one: a
--           product with one variant keeps its variant's units in avail alone, exactly as a gate
--           did before variants, so that a one-variant reserve costs what it cost then
-- A hold ({p:ID}:holds) is "qty:deadline_ms:state:user" for the variant `default` (the format
-- from before variants) and "qty:deadline_ms:state/variant:user" for any other (a variant id
-- matches [a-z0-9][a-z0-9._-]{0,31}, so it never holds a ':' or a '/').

-- vr_parse reads a hold: qty, deadline, state, variant, user (strings).
local function vr_parse(h)
  local qty, dl, state, vid, user = string.match(h, '^(%d+):(%d+):([%a_]+)/?([%w%._%-]*):(.*)$')
  if vid == '' then
    vid = 'default'
  end
  return qty, dl, state, vid, user
end

-- vr_hold writes a hold.
local function vr_hold(qty, dl, state, vid, user)
  if vid == 'default' then
    return qty .. ':' .. dl .. ':' .. state .. ':' .. user
  end
  return qty .. ':' .. dl .. ':' .. state .. '/' .. vid .. ':' .. user
end

-- vr_multi says whether a gate's variant list (vs) has more than one variant.
local function vr_multi(vs)
  return string.find(vs, ',', 1, true) ~= nil
end

-- vr_field is the gate field that holds variant vid's available units.
local function vr_field(multi, vid)
  if multi then
    return 'v:' .. vid
  end
  return 'avail'
end

-- vr_add adds d units to variant vid and to the product; returns the product's available.
local function vr_add(gate, multi, vid, d)
  if multi then
    redis.call('HINCRBY', gate, 'v:' .. vid, d)
  end
  return redis.call('HINCRBY', gate, 'avail', d)
end

-- ==== the script ====
