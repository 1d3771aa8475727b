-- Draws (API.md "Draws"): a product sold by a verifiable raffle instead of first come.
-- A product is a draw while it has a row in draws. New tables only, nothing running today
-- reads them; the one lock on an existing table is the foreign key's on products (SHARE ROW
-- EXCLUSIVE, held for the few milliseconds of this transaction, under the migrator's lock
-- timeout and retries like every file).
CREATE TABLE draws (
    product_id       text PRIMARY KEY REFERENCES products (id),
    -- The secret seed: 32 bytes from a secure source, made once when the product became a draw
    -- and never changed (its SHA-256 is shown from then on; the seed itself after the draw).
    seed             bytea NOT NULL CHECK (length(seed) = 32),
    draw_at          timestamptz NOT NULL,
    -- Fixed once, at closes_at: hex SHA-256 of the sorted entrants joined with "\n".
    entries_digest   text CHECK (entries_digest ~ '^[0-9a-f]{64}$'),
    entries_fixed_at timestamptz,
    beacon           text CHECK (beacon ~ '^[!-~]{1,256}$'),
    -- Set in the transaction that ranked every entry: the draw ran, exactly once.
    drawn_at         timestamptz,
    created_at       timestamptz NOT NULL,
    CHECK ((entries_digest IS NULL) = (entries_fixed_at IS NULL)),
    CHECK (drawn_at IS NULL OR entries_digest IS NOT NULL)
);

-- One entry per shopper per draw, as the shopper made it (replaced or withdrawn only during the
-- entry period). entrant is SHA-256(product_id || ':' || user_id), the only name the public
-- record shows.
CREATE TABLE draw_entries (
    product_id  text NOT NULL REFERENCES draws (product_id),
    user_id     text NOT NULL,
    entrant     bytea NOT NULL CHECK (length(entrant) = 32),
    variant_ids text[] NOT NULL CHECK (cardinality(variant_ids) BETWEEN 1 AND 5),
    quantity    integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (product_id, user_id)
);

-- The draw's outcome: one row per entry, written by the draw in one INSERT in rank order
-- (appending to the primary key is far cheaper than updating a million entries), then each
-- entry's offer. An entry without a row here has not been drawn ('entered').
CREATE TABLE draw_ranks (
    product_id       text NOT NULL REFERENCES draws (product_id),
    rank             integer NOT NULL CHECK (rank >= 1),
    user_id          text NOT NULL,
    state            text NOT NULL CHECK (state IN ('won', 'waitlisted', 'expired', 'lost')),
    reservation_id   text,
    variant_id       text,
    offer_expires_at timestamptz,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (product_id, rank),
    UNIQUE (product_id, user_id),
    CHECK ((state IN ('won', 'expired')) = (reservation_id IS NOT NULL))
);
