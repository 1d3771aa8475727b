-- Draws: 0050's check on a beacon, '^[!-~]{1,256}$', is an error in Postgres for every beacon
-- (a regular expression's bound may not pass 255), so no beacon could ever be set. The same
-- rule, written so Postgres can run it: 1..256 visible ASCII characters. The table is new and
-- its beacons all null, so the check is validated at once under the table's lock (draws only:
-- nothing on the sale's path reads it).
ALTER TABLE draws DROP CONSTRAINT IF EXISTS draws_beacon_check;
ALTER TABLE draws ADD CONSTRAINT draws_beacon_check CHECK (beacon ~ '^[!-~]+$' AND length(beacon) <= 256);
