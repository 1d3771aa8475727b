-- Gate generations come from a sequence: a number handed out by a rebuild that never
-- committed is never handed out again, so a hold taken from an orphaned gate cannot match.
CREATE SEQUENCE gate_generations;
SELECT setval('gate_generations', COALESCE((SELECT max(gate_gen) FROM products), 0) + 1);
