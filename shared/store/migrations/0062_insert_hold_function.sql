-- lu_insert_hold: the reserve's write (store.InsertHold) as one function, called in one
-- statement (issue 20). The runner and the functions send every statement unnamed (no
-- prepared statements: PgBouncer in transaction mode, RDS Proxy), so Postgres parsed,
-- analysed and planned the reserve's four-part WITH statement on every call: about a third
-- of the backends' CPU per reserve. PL/pgSQL keeps its statements' plans per backend, which
-- no pooler can see or break; the statement the client sends is a one-line SELECT.
--
-- The hold is recorded only while the product's gate generation is still _gen (read under
-- FOR KEY SHARE, which a rebuild's FOR UPDATE waits for) and _expires is after _now; false
-- otherwise, with nothing written. Fast path: the units come from the hold's own slot
-- (_slot) of its variant and are counted against the shopper's max_per_user here (LU003 over
-- it), and the hold is inserted units_taken and user_counted, so that its triggers have
-- nothing to do. When that slot is short the hold is inserted plainly: its triggers take the
-- units from the variant's other slots or pool them (LU001 when the variant cannot cover
-- it), and count the shopper (LU003). With _key not null, the idempotency record is
-- written in the same transaction (its primary key refuses a second use of the key).
-- An error aborts everything the call wrote.
--
-- A new function only: no table lock, nothing running today calls it.
CREATE FUNCTION lu_insert_hold(_id text, _product text, _variant text, _user text, _qty bigint,
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
    UPDATE product_slots SET free = free - _qty, ver = greatest(ver, _version)
     WHERE product_id = _product AND variant_id = _variant AND slot = _slot AND free >= _qty;
    IF FOUND THEN
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
