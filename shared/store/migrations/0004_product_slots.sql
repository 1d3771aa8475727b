-- Postgres enforces the count itself (DESIGN.md invariant 5): each product's free units
-- (stock on hand minus units in live holds) are split over 64 counter rows, so that holds of
-- a hot product take their units from different rows and do not queue on one row lock.
--
--   for every product: sum(product_slots.free) + units in live holds == products.stock
--
-- Triggers on reservations keep it for every status change, whichever code path makes it:
-- a hold becoming live (insert, a late payment taking expired holds again) takes units and
-- fails with SQLSTATE LU001 when the product's free units cannot cover it; a live hold ending
-- (released, expired, cancelled) gives its units back; a hold becoming fulfilled changes
-- nothing here, because fulfillment takes the same units out of stock on hand. Stock changes
-- by an admin lock every slot in slot order and spread the new total (lu_spread, from
-- store.UpsertProduct and store.Restock). The reserve's own insert takes its units from its
-- slot in the same statement (store.InsertHold's fast path, units_taken) and leaves the
-- trigger only the rest: other slots, pooling, or the refusal.

CREATE TABLE product_slots (
    product_id text NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    slot       smallint NOT NULL CHECK (slot BETWEEN 0 AND 63),
    free       bigint NOT NULL CHECK (free >= 0),
    -- the highest live-stock version a hold taken from this slot was granted at: the gate's
    -- version can never be below it, unless Redis lost writes (the sweep then rebuilds it)
    ver        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (product_id, slot)
);

-- The live-stock version the gate answered with when it granted the hold (0: unknown).
ALTER TABLE reservations ADD COLUMN gate_version bigint NOT NULL DEFAULT 0;
-- True only when the inserting statement took the hold's units from a slot itself (the
-- reserve's fast path, store.InsertHold): the insert trigger then has nothing to do.
ALTER TABLE reservations ADD COLUMN units_taken boolean NOT NULL DEFAULT false;

-- lu_slot_of: the slot a hold prefers, from its id (64 slots).
CREATE FUNCTION lu_slot_of(id text) RETURNS int LANGUAGE sql IMMUTABLE AS
$$ SELECT ((hashtext(id) % 64) + 64) % 64 $$;

-- lu_spread: set the product's free units to total, spread evenly over its 64 slots (the
-- caller has locked them in slot order, or the product is new).
CREATE FUNCTION lu_spread(p text, total bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO product_slots (product_id, slot, free)
    SELECT p, s, total / 64 + CASE WHEN s < total % 64 THEN 1 ELSE 0 END FROM generate_series(0, 63) s
    ON CONFLICT (product_id, slot) DO UPDATE SET free = EXCLUDED.free
$$;

-- lu_take_units: take q free units of product p and record version v on the slot. Fast path:
-- one slot with q free that nobody else is changing, the preferred one first; when all of them
-- are busy, wait for the preferred slot. Only when that slot cannot cover q is every slot
-- locked in slot order, the units pooled, taken and spread again; LU001 when all of them
-- together cannot cover q.
CREATE FUNCTION lu_take_units(p text, q bigint, pref int, v bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    UPDATE product_slots SET free = free - q, ver = greatest(ver, v)
     WHERE product_id = p AND slot = (SELECT slot FROM product_slots WHERE product_id = p AND free >= q
                                       ORDER BY slot < pref, slot LIMIT 1 FOR UPDATE SKIP LOCKED);
    IF FOUND THEN
        RETURN;
    END IF;
    -- Every slot with enough is being changed (a burst): queue on the preferred one. In a
    -- subtransaction, so that the lock it may leave when the slot turns out short is given
    -- back before every slot is locked in order (else two of them could deadlock).
    BEGIN
        UPDATE product_slots SET free = free - q, ver = greatest(ver, v)
         WHERE product_id = p AND slot = pref AND free >= q;
        IF FOUND THEN
            RETURN;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'LU002';
    EXCEPTION WHEN SQLSTATE 'LU002' THEN
        NULL;
    END;
    SELECT coalesce(sum(free), 0) INTO total
      FROM (SELECT free FROM product_slots WHERE product_id = p ORDER BY slot FOR UPDATE) x;
    IF total < q THEN
        RAISE EXCEPTION USING ERRCODE = 'LU001', DETAIL = p,
            MESSAGE = format('product %s has %s free units in postgres, a hold needs %s', p, total, q);
    END IF;
    PERFORM lu_spread(p, total - q);
    IF v > 0 THEN
        UPDATE product_slots SET ver = greatest(ver, v) WHERE product_id = p AND slot = pref;
    END IF;
END $$;

-- lu_give_units: give q units of product p back to one slot.
CREATE FUNCTION lu_give_units(p text, q bigint, pref int) RETURNS void LANGUAGE sql AS $$
    UPDATE product_slots SET free = free + q WHERE product_id = p AND slot = pref
$$;

CREATE FUNCTION lu_hold_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('reserved', 'checked_out') THEN
        PERFORM lu_take_units(NEW.product_id, NEW.quantity, lu_slot_of(NEW.id), NEW.gate_version);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER reservations_take_units AFTER INSERT ON reservations
    FOR EACH ROW WHEN (NOT NEW.units_taken) EXECUTE FUNCTION lu_hold_inserted();

-- One statement may end or revive many holds (the sweep, an order's items): the units are
-- netted per product and the products are visited in id order, so that two statements lock
-- slots in the same order and cannot deadlock.
CREATE FUNCTION lu_holds_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT n.product_id, min(n.id) AS first_id, sum(
            CASE WHEN o.status IN ('reserved', 'checked_out') AND n.status IN ('reserved', 'checked_out') THEN o.quantity - n.quantity
                 WHEN o.status IN ('reserved', 'checked_out') AND n.status <> 'fulfilled' THEN o.quantity
                 WHEN o.status NOT IN ('reserved', 'checked_out') AND n.status IN ('reserved', 'checked_out') THEN -n.quantity
                 ELSE 0 END)::bigint AS delta
          FROM new_rows n JOIN old_rows o ON o.id = n.id
         GROUP BY n.product_id
         ORDER BY n.product_id
    LOOP
        IF r.delta > 0 THEN
            PERFORM lu_give_units(r.product_id, r.delta, lu_slot_of(r.first_id));
        ELSIF r.delta < 0 THEN
            PERFORM lu_take_units(r.product_id, -r.delta, lu_slot_of(r.first_id), 0);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER reservations_move_units AFTER UPDATE ON reservations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lu_holds_updated();

-- Existing products: free = stock - live holds.
SELECT lu_spread(p.id, (p.stock - COALESCE((SELECT sum(r.quantity) FROM reservations r
    WHERE r.product_id = p.id AND r.status IN ('reserved', 'checked_out')), 0))::bigint)
  FROM products p;

-- Live-stock versions are now gen << 30 after a rebuild (stock.VersionBase). Versions handed
-- out before were milliseconds since 1970: move the generations past them once, so that the
-- first rebuild after this migration does not go below a version a viewer saw.
SELECT setval('gate_generations', greatest(
    (SELECT last_value FROM gate_generations),
    ((extract(epoch FROM now()) * 1000)::bigint >> 30) + 2));
