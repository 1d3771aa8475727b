-- max_per_user in Postgres too: the units each shopper holds or bought of each product (holds
-- reserved, checked out or fulfilled; released, expired and cancelled ones do not count),
-- kept by triggers on every hold transition, as the counter slots are. A hold that would take
-- a shopper past the product's max_per_user is refused (SQLSTATE LU003): the gate that
-- granted it is stale (an older copy after a failover lost the shopper's count), the reserve
-- rebuilds it and answers from the truth. Only one shopper's own requests touch their row.
CREATE TABLE product_users (
    product_id text NOT NULL REFERENCES products (id),
    user_id    text NOT NULL,
    units      bigint NOT NULL,
    PRIMARY KEY (product_id, user_id)
);

INSERT INTO product_users (product_id, user_id, units)
SELECT product_id, user_id, sum(quantity) FROM reservations
 WHERE status IN ('reserved', 'checked_out', 'fulfilled')
 GROUP BY product_id, user_id;

CREATE FUNCTION lu_user_units(p text, u text, d bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    lim bigint;
BEGIN
    INSERT INTO product_users AS pu (product_id, user_id, units) VALUES (p, u, d)
        ON CONFLICT (product_id, user_id) DO UPDATE SET units = pu.units + d
        RETURNING pu.units INTO n;
    IF d > 0 THEN
        SELECT max_per_user INTO lim FROM products WHERE id = p;
        IF n > lim THEN
            RAISE EXCEPTION USING ERRCODE = 'LU003', DETAIL = p,
                MESSAGE = format('shopper would hold or have bought %s units of %s, over max_per_user %s', n, p, lim);
        END IF;
    END IF;
END $$;

CREATE FUNCTION lu_user_hold_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('reserved', 'checked_out', 'fulfilled') THEN
        PERFORM lu_user_units(NEW.product_id, NEW.user_id, NEW.quantity);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER reservations_user_units_insert AFTER INSERT ON reservations
    FOR EACH ROW EXECUTE FUNCTION lu_user_hold_inserted();

-- Netted per product and shopper, visited in order (no deadlock between two statements).
CREATE FUNCTION lu_user_holds_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT n.product_id, n.user_id, sum(
            (CASE WHEN n.status IN ('reserved', 'checked_out', 'fulfilled') THEN n.quantity ELSE 0 END) -
            (CASE WHEN o.status IN ('reserved', 'checked_out', 'fulfilled') THEN o.quantity ELSE 0 END))::bigint AS delta
          FROM new_rows n JOIN old_rows o ON o.id = n.id
         GROUP BY n.product_id, n.user_id
         ORDER BY n.product_id, n.user_id
    LOOP
        IF r.delta <> 0 THEN
            PERFORM lu_user_units(r.product_id, r.user_id, r.delta);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER reservations_user_units_update AFTER UPDATE ON reservations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lu_user_holds_updated();
