-- Drops: the sale window and the waiting room's rate of each product.
ALTER TABLE products
    ADD COLUMN opens_at   timestamptz,
    ADD COLUMN closes_at  timestamptz,
    ADD COLUMN queue_rate integer NOT NULL DEFAULT 0 CHECK (queue_rate BETWEEN 0 AND 10000),
    ADD CONSTRAINT products_window CHECK (closes_at > opens_at);

-- A rebuild counts each shopper's bought units (fulfilled holds) of the product.
CREATE INDEX reservations_fulfilled_by_product ON reservations (product_id, user_id) WHERE status = 'fulfilled';
