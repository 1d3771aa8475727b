-- lastunit:no-transaction
-- Variants, step 6 of 6: the index a variant's removal needs (is it referenced by any hold?), built without
-- blocking writes: this file runs outside a transaction, one statement at a time (store.Migrate).
CREATE INDEX CONCURRENTLY IF NOT EXISTS reservations_by_variant ON reservations (product_id, variant_id);
