-- Variants, step 1 of 6 (add the table and backfill it): every product is sold in 1..100 variants (sizes),
-- each with its own stock on hand, sold units and counter slots. The old functions keep serving
-- through the pooler while this runs and after it (docs/variants.md, "The migration"): nothing
-- here changes a column's type, every new column has a constant default (no table rewrite, and
-- an insert by today's code, which does not name the column, gets the one variant every product
-- has until an admin gives it more: `default`), and the only backfill is one row per product.
--
-- Each file is one transaction that waits for one contended table lock, taken first: today's
-- code takes its table locks in more than one order (a reserve: slots, then reservations; a
-- release: reservations, then slots), so a transaction holding a strong lock on one of them
-- while waiting for another could close a cycle with it, and Postgres would cancel one side.
-- store.Migrate's lock timeout (200 ms, below the 1 s deadlock_timeout) ends any wait that
-- does, before a request can be picked as the victim; the file is then tried again.
--
-- products.stock and products.sold stay, as the totals over the product's variants: a trigger
-- on product_variants keeps them (the new code changes only variants), and while today's code
-- may still run, a trigger on products carries its direct changes of stock and sold to the
-- product's one variant (it refuses them on a product with more than one).

-- Today's reserves read products (FOR KEY SHARE), which SHARE ROW EXCLUSIVE lets through.
LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE product_variants (
    product_id  text NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    id          text NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,31}$'),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    price_cents bigint CHECK (price_cents >= 0),                   -- null: the product's price
    stock       bigint NOT NULL CHECK (stock >= 0),                -- units on hand, not yet fulfilled
    sold        bigint NOT NULL DEFAULT 0 CHECK (sold >= 0),       -- units fulfilled so far
    position    integer NOT NULL DEFAULT 0,                        -- order in the product's list
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (product_id, id)
);

-- The backfill: one variant per product, under the lock above, which keeps today's admin and
-- fulfillment writes of products out for the few milliseconds it takes.
INSERT INTO product_variants (product_id, id, name, price_cents, stock, sold, position, created_at, updated_at)
SELECT id, 'default', name, NULL, stock, sold, 0, created_at, updated_at FROM products;

-- Totals follow the variants (the new code's only way to change stock and sold).
CREATE FUNCTION lu_variant_totals() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ds bigint := 0;
    dd bigint := 0;
    p  text;
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NULL; -- carried here from products (lu_product_to_variant): the totals are right
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        ds := NEW.stock; dd := NEW.sold; p := NEW.product_id;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        ds := ds - OLD.stock; dd := dd - OLD.sold; p := OLD.product_id;
    END IF;
    IF ds <> 0 OR dd <> 0 THEN
        UPDATE products SET stock = stock + ds, sold = sold + dd WHERE id = p;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER product_variants_totals AFTER INSERT OR UPDATE OF stock, sold OR DELETE ON product_variants
    FOR EACH ROW EXECUTE FUNCTION lu_variant_totals();

-- Today's code changes products.stock and products.sold directly (admin PUT, restock,
-- fulfillment): carried to the product's one variant. A product with more than one variant
-- can only be changed through its variants (LU004).
CREATE FUNCTION lu_product_to_variant() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    IF pg_trigger_depth() > 1 OR (NEW.stock = OLD.stock AND NEW.sold = OLD.sold) THEN
        RETURN NULL; -- carried here from product_variants (lu_variant_totals)
    END IF;
    UPDATE product_variants SET stock = stock + (NEW.stock - OLD.stock), sold = sold + (NEW.sold - OLD.sold)
     WHERE product_id = NEW.id AND (SELECT count(*) FROM product_variants WHERE product_id = NEW.id) = 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> 1 THEN
        RAISE EXCEPTION USING ERRCODE = 'LU004', DETAIL = NEW.id,
            MESSAGE = format('product %s has %s variants: change its stock through them', NEW.id,
                (SELECT count(*) FROM product_variants WHERE product_id = NEW.id));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER products_to_variant AFTER UPDATE OF stock, sold ON products
    FOR EACH ROW EXECUTE FUNCTION lu_product_to_variant();

-- A product created by today's code (or by the new code, which then sets its variants in the
-- same transaction) starts with its one variant, `default`, named like the product.
CREATE FUNCTION lu_product_default_variant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO product_variants (product_id, id, name, price_cents, stock, sold, position, created_at, updated_at)
    VALUES (NEW.id, 'default', NEW.name, NULL, 0, 0, 0, NEW.created_at, NEW.updated_at);
    IF NEW.stock <> 0 OR NEW.sold <> 0 THEN
        UPDATE product_variants SET stock = NEW.stock, sold = NEW.sold WHERE product_id = NEW.id AND id = 'default';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER products_default_variant AFTER INSERT ON products
    FOR EACH ROW EXECUTE FUNCTION lu_product_default_variant();
