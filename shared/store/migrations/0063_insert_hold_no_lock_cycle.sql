-- The reserve's write without lock cycles (issue 20). In a full test run Postgres broke 31
-- "deadlock detected" cycles between reserves of one variant, each after deadlock_timeout (1 s),
-- before store.InsertHold tried again. Two steps kept a slot row locked that they did not use:
--
--   * lu_insert_hold's fast path (0062), `UPDATE ... WHERE slot = _slot AND free >= _qty`: when
--     the slot was being changed it waited, and when the other transaction left it short it
--     changed nothing but kept the row locked (Postgres locks the newest row version before it
--     rechecks the WHERE);
--   * the first step of lu_take_vunits (0044), `... free >= q ... FOR UPDATE SKIP LOCKED`: a row
--     changed since the statement began is locked first and rechecked after, and stays locked
--     when the recheck fails.
--
-- Either one left a transaction holding a slot when lu_take_vunits went on to lock every slot
-- of the variant in slot order, so two of them could each hold a slot the other waited for.
--
-- Now no transaction holds a stray slot lock when it locks them in order:
--
--   * lu_take_hold, the reserve's write from now on, takes the units on its fast path from the
--     hold's own slot as 0062 did (waiting while another transaction changes it). When the slot
--     cannot give them, it raises LU005, and the abort gives back the lock the UPDATE kept;
--     store.InsertHold calls it again with _slot NULL, and that fresh call inserts the hold
--     plainly for the trigger to take the units (one more round trip, on the slow path only).
--     Everything else is lu_insert_hold's. (A fast path that skipped slots being changed, FOR
--     UPDATE SKIP LOCKED, never waited but locked the row before changing it: 3 more buffer
--     accesses and about 7 % more Postgres CPU per reserve; docs/reserve-path.md.)
--   * lu_take_vunits makes each of its two tries (any free slot not being changed, then a wait
--     for the preferred one) in a subtransaction of its own, which gives back any lock the try
--     kept before the next one waits or every slot is locked in order.
--
-- A new function and a CREATE OR REPLACE: no table lock. lu_insert_hold stays for code that is
-- still running 0062's statement during a rollout (a later migration may drop it).
CREATE FUNCTION lu_take_hold(_id text, _product text, _variant text, _user text, _qty bigint,
        _expires timestamptz, _created timestamptz, _gen bigint, _now timestamptz, _version bigint,
        _slot int, _key text, _hash text, _status int, _body bytea)
    RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_lim   bigint;
    v_units bigint;
BEGIN
    IF _expires <= _now THEN
        RETURN false;
    END IF;
    SELECT max_per_user INTO v_lim FROM products WHERE id = _product AND gate_gen = _gen FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN false; -- no such product, or its gate was rebuilt since it granted the hold
    END IF;
    IF _slot IS NOT NULL THEN
        UPDATE product_slots SET free = free - _qty, ver = greatest(ver, _version)
         WHERE product_id = _product AND variant_id = _variant AND slot = _slot AND free >= _qty;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'LU005', DETAIL = _product,
                MESSAGE = format('slot %s of variant %s of %s has fewer than %s free units: call again with no slot',
                                 _slot, _variant, _product, _qty);
        END IF;
        INSERT INTO product_users AS pu (product_id, user_id, units) VALUES (_product, _user, _qty)
            ON CONFLICT (product_id, user_id) DO UPDATE SET units = pu.units + EXCLUDED.units
            RETURNING pu.units INTO v_units;
        IF v_units > v_lim THEN
            RAISE EXCEPTION USING ERRCODE = 'LU003', DETAIL = _product,
                MESSAGE = format('shopper would hold or have bought %s units of %s, over max_per_user %s', v_units, _product, v_lim);
        END IF;
        INSERT INTO reservations (id, product_id, variant_id, user_id, quantity, status, expires_at, created_at, updated_at,
                                  gate_version, units_taken, user_counted)
        VALUES (_id, _product, _variant, _user, _qty, 'reserved', _expires, _created, _created, _version, true, true);
    ELSE
        INSERT INTO reservations (id, product_id, variant_id, user_id, quantity, status, expires_at, created_at, updated_at, gate_version)
        VALUES (_id, _product, _variant, _user, _qty, 'reserved', _expires, _created, _created, _version);
    END IF;
    IF _key IS NOT NULL THEN
        INSERT INTO idempotency_keys (user_id, key, request_hash, status, body, created_at)
        VALUES (_user, _key, _hash, _status, _body, _created);
    END IF;
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION lu_take_vunits(p text, v text, q bigint, pref int, gv bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    -- Each try in a subtransaction of its own: a slot that it locked and then found short is
    -- given back (by the LU002 rollback) before the next try waits or every slot is locked in
    -- order.
    BEGIN
        UPDATE product_slots SET free = free - q, ver = greatest(ver, gv)
         WHERE product_id = p AND variant_id = v AND slot = (SELECT slot FROM product_slots
            WHERE product_id = p AND variant_id = v AND free >= q ORDER BY slot < pref, slot LIMIT 1 FOR UPDATE SKIP LOCKED);
        IF FOUND THEN
            RETURN;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'LU002';
    EXCEPTION WHEN SQLSTATE 'LU002' THEN
        NULL;
    END;
    -- Every slot with enough is being changed (a burst): queue on the preferred one.
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
