-- Cancelling a paid order records the intent to refund first, committed, before Stripe is
-- called: fulfillment refuses an order with a refund requested, and the sweep finishes a
-- cancel that a crash left between its steps (refund, then cancelled and units back).
ALTER TABLE orders ADD COLUMN refund_requested_at timestamptz;
CREATE INDEX orders_refund_requested ON orders (refund_requested_at)
    WHERE status = 'paid' AND refund_requested_at IS NOT NULL;
