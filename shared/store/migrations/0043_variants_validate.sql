-- Variants, step 4 of 6: the old holds name a variant too (the constant default of step 2), so
-- no row can fail this check; VALIDATE scans reservations under a lock that lets every read and
-- write go on, so it has a file (a transaction) of its own.
ALTER TABLE reservations VALIDATE CONSTRAINT reservations_variant_fk;
