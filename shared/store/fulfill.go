package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"lastunit/shared/shop"
)

// FulfillOrder locks the order and, if it is paid, moves its units from stock on hand to
// sold and its holds and itself to fulfilled, in one transaction.
func (s *Store) FulfillOrder(ctx context.Context, orderID string, now time.Time) (shop.FulfillResult, error) {
	var res shop.FulfillResult
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT status, refund_requested_at IS NOT NULL FROM orders WHERE id = $1 FOR UPDATE`,
			orderID).Scan(&res.Status, &res.RefundRequested); err != nil {
			return fmt.Errorf("lock order: %w", translate(err))
		}
		if res.Status != shop.OrderPaid || res.RefundRequested {
			return nil // a refunded (or being refunded) order is never fulfilled
		}
		rows, err := tx.Query(ctx, `UPDATE reservations SET status = 'fulfilled', updated_at = $2
			WHERE order_id = $1 AND status = 'checked_out' RETURNING `+reservationCols, orderID, now)
		if err != nil {
			return fmt.Errorf("fulfill holds: %w", translate(err))
		}
		if res.Holds, err = pgx.CollectRows(rows, scanReservation); err != nil {
			return fmt.Errorf("fulfill holds: %w", translate(err))
		}
		// Per variant; the products' totals follow by trigger (migration 0040). The products
		// are locked first (as every path that changes stock locks the product before its
		// variants), so an admin change of the same product cannot deadlock with this.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM products WHERE id IN (SELECT product_id FROM reservations WHERE id = ANY($1))
			ORDER BY id FOR NO KEY UPDATE`, holdIDs(res.Holds)); err != nil {
			return fmt.Errorf("lock products: %w", translate(err))
		}
		if _, err := tx.Exec(ctx, `UPDATE product_variants v SET stock = v.stock - h.qty, sold = v.sold + h.qty, updated_at = $2
			FROM (SELECT product_id, variant_id, sum(quantity) AS qty FROM reservations WHERE id = ANY($1)
				GROUP BY product_id, variant_id ORDER BY product_id, variant_id) h
			WHERE v.product_id = h.product_id AND v.id = h.variant_id`, holdIDs(res.Holds), now); err != nil {
			return fmt.Errorf("take units from stock: %w", translate(err))
		}
		if _, err := tx.Exec(ctx, `UPDATE orders SET status = 'fulfilled', attempts = attempts + 1, last_error = NULL,
			failed_at = NULL, updated_at = $2 WHERE id = $1`, orderID, now); err != nil {
			return fmt.Errorf("fulfill order: %w", translate(err))
		}
		return nil
	})
	return res, err
}

func holdIDs(rs []shop.Reservation) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return ids
}

// RecordFailure counts a failed fulfillment attempt; deadLettered marks a paid order as a
// failed job.
func (s *Store) RecordFailure(ctx context.Context, orderID, lastError string, deadLettered bool, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE orders SET attempts = attempts + 1, last_error = $2, updated_at = $3,
		failed_at = CASE WHEN $4 AND status = 'paid' THEN $3 ELSE failed_at END WHERE id = $1`, orderID, lastError, now, deadLettered)
	if err != nil {
		return fmt.Errorf("record fulfillment failure: %w", translate(err))
	}
	return nil
}

// MarkStalePaid marks paid orders untouched since before as failed jobs.
func (s *Store) MarkStalePaid(ctx context.Context, before, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE orders SET failed_at = $2,
		last_error = COALESCE(last_error, 'fulfillment did not finish in time (no attempt recorded its failure)')
		WHERE status = 'paid' AND failed_at IS NULL AND updated_at < $1`, before, now)
	if err != nil {
		return 0, fmt.Errorf("mark stale paid orders: %w", translate(err))
	}
	return tag.RowsAffected(), nil
}

// FailedJobs returns paid orders marked as failed jobs, oldest first (only those that failed
// before *before, when it is set).
func (s *Store) FailedJobs(ctx context.Context, before *time.Time) ([]shop.Order, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+orderCols+` FROM orders
		WHERE status = 'paid' AND failed_at IS NOT NULL AND ($1::timestamptz IS NULL OR failed_at < $1)
		ORDER BY failed_at, id`, before)
	if err != nil {
		return nil, fmt.Errorf("select failed jobs: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (shop.Order, error) { return scanOrder(row) })
	if err != nil {
		return nil, fmt.Errorf("select failed jobs: %w", translate(err))
	}
	return out, nil
}

// ClearFailed unmarks failed jobs that were queued again and restarts their wait at now, so
// the sweep's stale-paid check counts from the retry, not from the first failure.
func (s *Store) ClearFailed(ctx context.Context, orderIDs []string, now time.Time) error {
	if len(orderIDs) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `UPDATE orders SET failed_at = NULL, updated_at = $2
		WHERE id = ANY($1) AND failed_at IS NOT NULL AND refund_requested_at IS NULL`, orderIDs, now); err != nil {
		return fmt.Errorf("clear failed jobs: %w", translate(err))
	}
	return nil
}

// RequestRefund records, committed, the intent to refund a paid order that is a failed job
// (compare-and-set; a second call keeps the first time). FulfillOrder locks the same row, so
// a fulfillment either committed before (the order is fulfilled: nothing requested) or sees
// the request and leaves the order alone.
func (s *Store) RequestRefund(ctx context.Context, orderID string, now time.Time) (shop.Order, bool, error) {
	o, err := scanOrder(s.pool.QueryRow(ctx, `UPDATE orders SET refund_requested_at = COALESCE(refund_requested_at, $2), updated_at = $2
		WHERE id = $1 AND status = 'paid' AND (failed_at IS NOT NULL OR refund_requested_at IS NOT NULL)
		RETURNING `+orderCols, orderID, now))
	if err == nil {
		return o, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return shop.Order{}, false, fmt.Errorf("request refund: %w", translate(err))
	}
	o, err = s.Order(ctx, orderID)
	return o, false, err
}

// FinishCancel moves a paid order with a refund requested, and its checked-out holds, to
// cancelled in one transaction.
func (s *Store) FinishCancel(ctx context.Context, orderID string, now time.Time) ([]shop.Reservation, bool, error) {
	var holds []shop.Reservation
	moved := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE orders SET status = 'cancelled', failed_at = NULL, updated_at = $2
			WHERE id = $1 AND status = 'paid' AND refund_requested_at IS NOT NULL`, orderID, now)
		if err != nil {
			return fmt.Errorf("cancel order: %w", translate(err))
		}
		if moved = tag.RowsAffected() == 1; !moved {
			return nil
		}
		rows, err := tx.Query(ctx, `UPDATE reservations SET status = 'cancelled', updated_at = $2
			WHERE order_id = $1 AND status = 'checked_out' RETURNING `+reservationCols, orderID, now)
		if err != nil {
			return fmt.Errorf("cancel holds: %w", translate(err))
		}
		holds, err = pgx.CollectRows(rows, scanReservation)
		return translate(err)
	})
	if err != nil {
		return nil, false, err
	}
	return holds, moved, nil
}

// RefundsDue returns up to limit paid orders with a refund requested, oldest request first.
func (s *Store) RefundsDue(ctx context.Context, limit int) ([]shop.Order, error) {
	// Least recently tried first (a failed refund touches updated_at): an order Stripe keeps
	// refusing never starves the newer ones.
	rows, err := s.pool.Query(ctx, `SELECT `+orderCols+` FROM orders
		WHERE status = 'paid' AND refund_requested_at IS NOT NULL ORDER BY updated_at, id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("select requested refunds: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (shop.Order, error) { return scanOrder(row) })
	if err != nil {
		return nil, fmt.Errorf("select requested refunds: %w", translate(err))
	}
	return out, nil
}

// NoteRefundFailure records a requested refund's failed attempt on its order (last_error,
// updated_at): admins see why the cancel waits, and RefundsDue tries it after the others.
func (s *Store) NoteRefundFailure(ctx context.Context, orderID, reason string, now time.Time) error {
	if len(reason) > 500 {
		reason = strings.ToValidUTF8(reason[:500], "") // never half a character: Postgres refuses it
	}
	if _, err := s.pool.Exec(ctx, `UPDATE orders SET last_error = $2, updated_at = $3
		WHERE id = $1 AND status = 'paid' AND refund_requested_at IS NOT NULL`, orderID, "refund: "+reason, now); err != nil {
		return fmt.Errorf("note refund failure: %w", translate(err))
	}
	return nil
}

// Orders lists up to limit orders, newest first, optionally of one status, with items.
func (s *Store) Orders(ctx context.Context, status string, limit int) ([]shop.Order, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+orderCols+` FROM orders WHERE ($1 = '' OR status = $1)
		ORDER BY created_at DESC, id LIMIT $2`, status, limit)
	if err != nil {
		return nil, fmt.Errorf("select orders: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (shop.Order, error) { return scanOrder(row) })
	if err != nil {
		return nil, fmt.Errorf("select orders: %w", translate(err))
	}
	if len(out) == 0 {
		return out, nil
	}
	ids := make([]string, len(out))
	at := make(map[string]int, len(out))
	for i, o := range out {
		ids[i], at[o.ID] = o.ID, i
	}
	items, err := s.pool.Query(ctx, `SELECT order_id, reservation_id, product_id, variant_id, quantity, unit_price_cents, hold_expires_at
		FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, reservation_id`, ids)
	if err != nil {
		return nil, fmt.Errorf("select order items: %w", translate(err))
	}
	var oid string
	var it shop.OrderItem
	_, err = pgx.ForEachRow(items, []any{&oid, &it.ReservationID, &it.ProductID, &it.VariantID, &it.Quantity, &it.UnitPriceCents, &it.HoldExpiresAt}, func() error {
		it.HoldExpiresAt = it.HoldExpiresAt.UTC()
		out[at[oid]].Items = append(out[at[oid]].Items, it)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select order items: %w", translate(err))
	}
	return out, nil
}

// TryLock takes the lease named key for ttl unless another holder's lease on it is still
// running at now; unlock gives it back. A lease is a row, not a session advisory lock, so it
// holds through PgBouncer or RDS Proxy (which hand each transaction any server connection)
// and a holder that dies frees it when its lease runs out.
func (s *Store) TryLock(ctx context.Context, key string, now time.Time, ttl time.Duration) (func(), bool, error) {
	holder := shop.NewID("l_")
	var got string
	err := s.pool.QueryRow(ctx, `INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
		WHERE leases.until <= $4
		RETURNING holder`, key, holder, now.Add(ttl), now).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("take lease %s: %w", key, translate(err))
	}
	return func() {
		if _, err := s.pool.Exec(context.WithoutCancel(ctx), `DELETE FROM leases WHERE name = $1 AND holder = $2`, key, holder); err != nil {
			_ = err // the lease runs out by itself
		}
	}, true, nil
}
