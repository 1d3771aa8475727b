-- A hold's foreign key to products is implied by its foreign key to product_variants (migration
-- 0041, validated by 0043): a hold names a variant of its product, and a variant's product
-- exists (product_variants references products; deleting a product cascades to its variants,
-- which the holds' key refuses while any hold names one). The implied key cost every reserve a
-- second referential-integrity check (a trigger, an index read and a KEY SHARE lock on the
-- product's row) after the one the statement itself takes (issue 20).
--
-- Dropping a foreign key locks both tables (ACCESS EXCLUSIVE, for the milliseconds of this
-- transaction). products first: a reserve reads its product before it inserts its hold, so
-- taking reservations first would wait on reserves that wait on it (every try timed out under
-- the online test's traffic). Each wait is bounded by the migrator's lock timeout, then retried.
LOCK TABLE products IN ACCESS EXCLUSIVE MODE;
LOCK TABLE reservations IN ACCESS EXCLUSIVE MODE;
ALTER TABLE reservations DROP CONSTRAINT reservations_product_id_fkey;
