-- The control room (docs/control-room.md): each finished minute of a sale's per-second counts,
-- rolled from Redis by the sweep, so that the report survives a Redis loss (at most the minute
-- in progress is lost). A minute is written once: its primary key, and INSERT … ON CONFLICT DO
-- NOTHING, make overlapping sweeps agree. No foreign key to products: adding one would lock
-- products (SHARE ROW EXCLUSIVE) under a drop's traffic, and products are never deleted.
CREATE TABLE sale_minutes (
    product_id          text NOT NULL,
    minute              timestamptz NOT NULL CHECK (date_trunc('minute', minute) = minute),
    reserve_ok          bigint NOT NULL DEFAULT 0,
    out_of_stock        bigint NOT NULL DEFAULT 0,
    limit_exceeded      bigint NOT NULL DEFAULT 0,
    not_admitted        bigint NOT NULL DEFAULT 0,
    not_open            bigint NOT NULL DEFAULT 0,
    rate_limited        bigint NOT NULL DEFAULT 0,
    released            bigint NOT NULL DEFAULT 0,
    expired             bigint NOT NULL DEFAULT 0,
    checked_out         bigint NOT NULL DEFAULT 0,
    paid                bigint NOT NULL DEFAULT 0,
    queue_joined        bigint NOT NULL DEFAULT 0,
    available           bigint,            -- at the minute's end, null: no change counted in it
    held                bigint,
    serving             bigint,
    reserve_ms_p50      double precision,  -- null: no reserve measured in the minute
    reserve_ms_p99      double precision,
    peak_reserves_per_s bigint NOT NULL DEFAULT 0,
    sold_out_at         timestamptz,       -- the first moment in the minute available reached 0
    rolled_at           timestamptz NOT NULL,
    PRIMARY KEY (product_id, minute)
);

-- Per product, the first minute no sweep has rolled yet (the sweep reads only from there).
CREATE TABLE sale_minute_cursors (
    product_id text PRIMARY KEY,
    rolled_to  timestamptz NOT NULL
);
