-- Every charge ends (DESIGN.md invariant 12): the sweep asks Stripe about orders that ended
-- without a payment (expired) or whose refund may not have gone through (refunded), for as long
-- as Stripe may still deliver their webhooks. checked_at is when it last asked (least recently
-- asked first); settled_at is when Stripe had nothing more to say (the intent canceled, the
-- refund confirmed, or the window passed): from then on the order is never asked about again.
ALTER TABLE orders ADD COLUMN checked_at timestamptz, ADD COLUMN settled_at timestamptz;
CREATE INDEX orders_unsettled ON orders (checked_at NULLS FIRST, id)
    WHERE status IN ('expired', 'refunded') AND payment_intent_id IS NOT NULL AND settled_at IS NULL;
