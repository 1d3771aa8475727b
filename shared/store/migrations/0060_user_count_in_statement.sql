-- The reserve counts its shopper itself (issue 20): store.InsertHold's fast path already
-- takes the hold's units from its slot itself (units_taken spares the slot trigger); now it
-- also adds the hold's units to the shopper's row of product_users and checks max_per_user
-- against the product row it has just read (lu_insert_hold, migration 0062), and marks the
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
