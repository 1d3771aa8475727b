-- Variants, step 3 of 6: order items name their variant (a constant default, no rewrite).
LOCK TABLE order_items IN ACCESS EXCLUSIVE MODE;
ALTER TABLE order_items ADD COLUMN variant_id text NOT NULL DEFAULT 'default';
