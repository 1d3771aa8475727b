-- The reserve counts its shopper itself (issue 20): store.InsertHold's fast path already
-- takes the hold's units from its slot itself (units_taken spares the slot trigger); now it
-- also adds the hold's units to the shopper's row of product_users and checks max_per_user
-- against the product row it has just read, in the same statement, and marks the
-- hold user_counted, which spares the per-row trigger of migration 0031 (two PL/pgSQL calls
-- and a second read of the product per reserve). Every other insert (the plain path,
-- code of an older deploy still running during the rollout, which does not name the column)
-- gets the default, false, and is counted by the trigger as before; updates are unchanged.
--
-- Safe online: a new column with a constant default is a catalog change (no rewrite), and the
-- trigger is replaced in the same transaction under the table's lock, taken first (the
-- migrator's lock timeout ends a wait that would close a cycle with the traffic, and retries).
LOCK TABLE reservations IN ACCESS EXCLUSIVE MODE;

-- True only when the inserting statement counted the hold's units in product_users itself.
ALTER TABLE reservations ADD COLUMN user_counted boolean NOT NULL DEFAULT false;

CREATE OR REPLACE TRIGGER reservations_user_units_insert AFTER INSERT ON reservations
    FOR EACH ROW WHEN (NOT NEW.user_counted) EXECUTE FUNCTION lu_user_hold_inserted();

-- lu_over_limit: the refusal of migration 0031's lu_user_units (SQLSTATE LU003), for a
-- statement that counted its shopper itself and found n units over max_per_user lim. It never
-- returns: called from a CASE only when the count is over, it aborts the whole statement (the
-- slot's units and the shopper's count go back with it).
CREATE FUNCTION lu_over_limit(p text, n bigint, lim bigint) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'LU003', DETAIL = p,
        MESSAGE = format('shopper would hold or have bought %s units of %s, over max_per_user %s', n, p, lim);
END $$;
