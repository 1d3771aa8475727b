-- Variants, step 2 of 6: holds name their variant. A constant default is a catalog change only
-- (no rewrite): every existing hold reads `default`, and so does every hold today's code inserts.
-- A hold names a variant of its product: checked for new rows now, for the old ones by step 4.
LOCK TABLE reservations IN ACCESS EXCLUSIVE MODE;
ALTER TABLE reservations ADD COLUMN variant_id text NOT NULL DEFAULT 'default';
ALTER TABLE reservations ADD CONSTRAINT reservations_variant_fk
    FOREIGN KEY (product_id, variant_id) REFERENCES product_variants (product_id, id) NOT VALID;
