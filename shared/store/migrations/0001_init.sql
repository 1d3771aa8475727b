-- Products, holds and idempotency records: the source of truth.

CREATE TABLE products (
    id           text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price_cents  bigint NOT NULL CHECK (price_cents >= 0),
    currency     text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    stock        bigint NOT NULL CHECK (stock >= 0),          -- units on hand, not yet fulfilled
    sold         bigint NOT NULL DEFAULT 0 CHECK (sold >= 0), -- units fulfilled so far
    max_per_user bigint NOT NULL CHECK (max_per_user > 0),
    gate_gen     bigint NOT NULL DEFAULT 0,                   -- generation of the Redis gate
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

CREATE TABLE reservations (
    id         text PRIMARY KEY,
    product_id text NOT NULL REFERENCES products (id),
    user_id    text NOT NULL,
    quantity   bigint NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    status     text NOT NULL CHECK (status IN ('reserved', 'checked_out', 'fulfilled', 'released', 'expired', 'cancelled')),
    expires_at timestamptz NOT NULL,
    order_id   text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);

-- The sweep's scan and the per-product count of live holds.
CREATE INDEX reservations_live_by_deadline ON reservations (expires_at) WHERE status = 'reserved';
CREATE INDEX reservations_live_by_product ON reservations (product_id) WHERE status IN ('reserved', 'checked_out');
CREATE INDEX reservations_by_user ON reservations (user_id, created_at) WHERE status IN ('reserved', 'checked_out');

CREATE TABLE idempotency_keys (
    user_id      text NOT NULL,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,
    status       integer NOT NULL,
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
