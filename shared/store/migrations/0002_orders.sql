-- Orders, their items, and the Stripe events already handled.

CREATE TABLE orders (
    id                 text PRIMARY KEY,
    user_id            text NOT NULL,
    status             text NOT NULL CHECK (status IN ('payment_pending', 'paid', 'fulfilled', 'expired', 'cancelled', 'refunded')),
    amount_cents       bigint NOT NULL CHECK (amount_cents >= 0),
    currency           text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    payment_intent_id  text UNIQUE,
    client_secret      text,
    payment_expires_at timestamptz NOT NULL,
    attempts           integer NOT NULL DEFAULT 0,
    last_error         text,
    failed_at          timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    -- The client secret is kept only while the shopper can still pay.
    CHECK (status = 'payment_pending' OR client_secret IS NULL)
);
CREATE INDEX orders_pending_by_deadline ON orders (payment_expires_at) WHERE status = 'payment_pending';
CREATE INDEX orders_by_status ON orders (status, created_at);

CREATE TABLE order_items (
    order_id         text NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    reservation_id   text NOT NULL REFERENCES reservations (id),
    product_id       text NOT NULL REFERENCES products (id),
    quantity         bigint NOT NULL CHECK (quantity > 0),
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
    hold_expires_at  timestamptz NOT NULL, -- the hold's deadline before checkout, restored if payment cannot start
    PRIMARY KEY (order_id, reservation_id)
);
CREATE INDEX order_items_by_reservation ON order_items (reservation_id);

ALTER TABLE reservations ADD CONSTRAINT reservations_order_fk FOREIGN KEY (order_id) REFERENCES orders (id);
CREATE INDEX reservations_by_order ON reservations (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE stripe_events (
    id           text PRIMARY KEY,
    type         text NOT NULL,
    processed_at timestamptz NOT NULL
);
