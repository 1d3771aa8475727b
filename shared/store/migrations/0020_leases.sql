-- Leases: named locks that live in a row instead of a session (advisory locks do not survive
-- a transaction pooler such as PgBouncer or RDS Proxy), freed by their holder or when they run out.
CREATE TABLE leases (
  name   text PRIMARY KEY,
  holder text NOT NULL,
  until  timestamptz NOT NULL
);
