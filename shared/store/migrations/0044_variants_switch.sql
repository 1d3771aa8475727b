-- Variants, step 5 of 6 (switch): the counter slots count per variant, and the triggers that
-- keep them take and give a hold's units from its own variant's slots. Invariant, per variant:
--
--   sum(product_slots.free of the variant) + units in its live holds == product_variants.stock
--
-- (for a product, the sum over its variants is migration 0004's invariant, unchanged).
-- max_per_user stays per product (product_users, migration 0031): it counts every variant.
--
-- Today's code, still running, takes its units from a slot by (product_id, slot) in its
-- reserve's fast path: on a product with one variant that is still exactly one row.

-- The slots first (the contended lock; product_slots has 64 rows per variant, so this file
-- holds it for milliseconds), then product_variants for the foreign key: a request of today's
-- code that changes product_variants (by the step 1 triggers) holds no slot lock it could wait on.
LOCK TABLE product_slots IN ACCESS EXCLUSIVE MODE;
LOCK TABLE product_variants IN SHARE ROW EXCLUSIVE MODE;
ALTER TABLE product_slots ADD COLUMN variant_id text NOT NULL DEFAULT 'default';

ALTER TABLE product_slots DROP CONSTRAINT product_slots_pkey,
    ADD CONSTRAINT product_slots_pkey PRIMARY KEY (product_id, variant_id, slot);
ALTER TABLE product_slots ADD CONSTRAINT product_slots_variant_fk
    FOREIGN KEY (product_id, variant_id) REFERENCES product_variants (product_id, id) ON DELETE CASCADE;

-- lu_vspread: set a variant's free units to total, spread evenly over its 64 slots (the caller
-- has locked them in slot order, or the variant is new).
CREATE FUNCTION lu_vspread(p text, v text, total bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO product_slots (product_id, variant_id, slot, free)
    SELECT p, v, s, total / 64 + CASE WHEN s < total % 64 THEN 1 ELSE 0 END FROM generate_series(0, 63) s
    ON CONFLICT (product_id, variant_id, slot) DO UPDATE SET free = EXCLUDED.free
$$;

-- lu_spread keeps today's signature for today's code (admin PUT, restock): the product's one
-- variant. A product with more than one is changed only through its variants (LU004).
CREATE OR REPLACE FUNCTION lu_spread(p text, total bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v text;
BEGIN
    IF (SELECT count(*) FROM product_variants WHERE product_id = p) <> 1 THEN
        RAISE EXCEPTION USING ERRCODE = 'LU004', DETAIL = p,
            MESSAGE = format('product %s has more than one variant: spread its units per variant', p);
    END IF;
    SELECT id INTO v FROM product_variants WHERE product_id = p;
    PERFORM lu_vspread(p, v, total);
END $$;

-- lu_take_vunits: migration 0004's lu_take_units for one variant: take q free units of variant
-- v of product p and record version gv on the slot; LU001 (DETAIL: the product) when all of
-- the variant's slots together cannot cover q.
CREATE FUNCTION lu_take_vunits(p text, v text, q bigint, pref int, gv bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    UPDATE product_slots SET free = free - q, ver = greatest(ver, gv)
     WHERE product_id = p AND variant_id = v AND slot = (SELECT slot FROM product_slots
        WHERE product_id = p AND variant_id = v AND free >= q ORDER BY slot < pref, slot LIMIT 1 FOR UPDATE SKIP LOCKED);
    IF FOUND THEN
        RETURN;
    END IF;
    BEGIN
        UPDATE product_slots SET free = free - q, ver = greatest(ver, gv)
         WHERE product_id = p AND variant_id = v AND slot = pref AND free >= q;
        IF FOUND THEN
            RETURN;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'LU002';
    EXCEPTION WHEN SQLSTATE 'LU002' THEN
        NULL;
    END;
    SELECT coalesce(sum(free), 0) INTO total
      FROM (SELECT free FROM product_slots WHERE product_id = p AND variant_id = v ORDER BY slot FOR UPDATE) x;
    IF total < q THEN
        RAISE EXCEPTION USING ERRCODE = 'LU001', DETAIL = p,
            MESSAGE = format('variant %s of product %s has %s free units in postgres, a hold needs %s', v, p, total, q);
    END IF;
    PERFORM lu_vspread(p, v, total - q);
    IF gv > 0 THEN
        UPDATE product_slots SET ver = greatest(ver, gv)
         WHERE product_id = p AND variant_id = v AND slot = pref;
    END IF;
END $$;

-- lu_give_vunits: give q units of variant v of product p back to one slot.
CREATE FUNCTION lu_give_vunits(p text, v text, q bigint, pref int) RETURNS void LANGUAGE sql AS $$
    UPDATE product_slots SET free = free + q WHERE product_id = p AND variant_id = v AND slot = pref
$$;

CREATE OR REPLACE FUNCTION lu_hold_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('reserved', 'checked_out') THEN
        PERFORM lu_take_vunits(NEW.product_id, NEW.variant_id, NEW.quantity, lu_slot_of(NEW.id), NEW.gate_version);
    END IF;
    RETURN NULL;
END $$;

-- Netted per variant, visited in (product, variant) order: two statements lock slots in the
-- same order and cannot deadlock.
CREATE OR REPLACE FUNCTION lu_holds_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT n.product_id, n.variant_id, min(n.id) AS first_id, sum(
            CASE WHEN o.status IN ('reserved', 'checked_out') AND n.status IN ('reserved', 'checked_out') THEN o.quantity - n.quantity
                 WHEN o.status IN ('reserved', 'checked_out') AND n.status <> 'fulfilled' THEN o.quantity
                 WHEN o.status NOT IN ('reserved', 'checked_out') AND n.status IN ('reserved', 'checked_out') THEN -n.quantity
                 ELSE 0 END)::bigint AS delta
          FROM new_rows n JOIN old_rows o ON o.id = n.id
         GROUP BY n.product_id, n.variant_id
         ORDER BY n.product_id, n.variant_id
    LOOP
        IF r.delta > 0 THEN
            PERFORM lu_give_vunits(r.product_id, r.variant_id, r.delta, lu_slot_of(r.first_id));
        ELSIF r.delta < 0 THEN
            PERFORM lu_take_vunits(r.product_id, r.variant_id, -r.delta, lu_slot_of(r.first_id), 0);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

-- The per-product lu_take_units and lu_give_units stay: a statement of today's code that began
-- before this commit may still run the old trigger bodies, which call them (dropping them
-- failed such a statement with "cache lookup failed for function" under the online test). On a
-- product with one variant they still touch exactly that variant's slots. A later migration,
-- once no old function runs, may drop them.
