package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"lastunit/shared/shop"
)

// The control room's part of Postgres (shop.ControlStore, migration 0070).

var _ shop.ControlStore = (*Store)(nil)

// SaleFacts reads what Postgres knows of a sale by itself: its holds, orders and draw entries.
func (s *Store) SaleFacts(ctx context.Context, productID string) (shop.SaleFacts, error) {
	var f shop.SaleFacts
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY`); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `
			SELECT COALESCE(p.opens_at, p.created_at),
			       (SELECT min(created_at) FROM reservations WHERE product_id = p.id),
			       (SELECT count(DISTINCT user_id) FROM reservations WHERE product_id = p.id),
			       (SELECT COALESCE(max(n), 0) FROM (SELECT count(*) AS n FROM reservations
			            WHERE product_id = p.id GROUP BY date_trunc('second', created_at)) AS per_second),
			       (SELECT count(*) FROM draw_entries WHERE product_id = p.id)
			FROM products p WHERE p.id = $1`, productID).
			Scan(&f.OpenedAt, &f.FirstHoldAt, &f.Shoppers, &f.PeakReservesPerS, &f.Entered)
		if err != nil {
			return fmt.Errorf("select sale facts: %w", translate(err))
		}
		// The orders that hold units of the product, through its holds (indexed by product).
		err = tx.QueryRow(ctx, `
			WITH items AS (
			    SELECT o.user_id, o.status, o.refund_requested_at IS NOT NULL AS refund, oi.quantity
			    FROM reservations r
			    JOIN order_items oi ON oi.reservation_id = r.id
			    JOIN orders o ON o.id = oi.order_id
			    WHERE r.product_id = $1)
			SELECT count(DISTINCT user_id),
			       count(DISTINCT user_id) FILTER (WHERE status IN ('paid', 'fulfilled', 'refunded') OR (status = 'cancelled' AND refund)),
			       count(DISTINCT user_id) FILTER (WHERE status = 'fulfilled'),
			       COALESCE(sum(quantity) FILTER (WHERE status IN ('paid', 'fulfilled')), 0),
			       COALESCE(sum(quantity) FILTER (WHERE status = 'refunded' OR (status = 'cancelled' AND refund)), 0)
			FROM items`, productID).
			Scan(&f.CheckedOut, &f.Paid, &f.Fulfilled, &f.UnitsSold, &f.UnitsRefunded)
		if err != nil {
			return fmt.Errorf("select sale orders: %w", translate(err))
		}
		return nil
	})
	if f.OpenedAt != nil {
		t := f.OpenedAt.UTC()
		f.OpenedAt = &t
	}
	if f.FirstHoldAt != nil {
		t := f.FirstHoldAt.UTC()
		f.FirstHoldAt = &t
	}
	return f, err
}

const saleMinuteCols = `minute, reserve_ok, out_of_stock, limit_exceeded, not_admitted, not_open, rate_limited,
	released, expired, checked_out, paid, queue_joined, available, held, serving, reserve_ms_p50, reserve_ms_p99,
	peak_reserves_per_s, sold_out_at`

// SaleMinutes returns the product's rolled minutes, oldest first.
func (s *Store) SaleMinutes(ctx context.Context, productID string) ([]shop.SaleMinute, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+saleMinuteCols+` FROM sale_minutes WHERE product_id = $1 ORDER BY minute`, productID)
	if err != nil {
		return nil, fmt.Errorf("select sale minutes: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (shop.SaleMinute, error) {
		var m shop.SaleMinute
		err := r.Scan(&m.Minute, &m.ReserveOK, &m.OutOfStock, &m.LimitExceeded, &m.NotAdmitted, &m.NotOpen, &m.RateLimited,
			&m.Released, &m.Expired, &m.CheckedOut, &m.Paid, &m.QueueJoined, &m.Available, &m.Held, &m.Serving,
			&m.ReserveMsP50, &m.ReserveMsP99, &m.PeakReservesPerS, &m.SoldOutAt)
		m.Minute = m.Minute.UTC()
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("select sale minutes: %w", translate(err))
	}
	return out, nil
}

// RolledTo returns, per product, the first minute no sweep has rolled yet.
func (s *Store) RolledTo(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT product_id, rolled_to FROM sale_minute_cursors`)
	if err != nil {
		return nil, fmt.Errorf("select sale minute cursors: %w", translate(err))
	}
	out := map[string]time.Time{}
	var id string
	var t time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &t}, func() error {
		out[id] = t
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select sale minute cursors: %w", translate(err))
	}
	return out, nil
}

// PutSaleMinutes inserts the minutes not there yet and moves the product's cursor to next
// (never back), in one transaction: whichever overlapping sweep commits first writes a minute.
func (s *Store) PutSaleMinutes(ctx context.Context, productID string, ms []shop.SaleMinute, next time.Time) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		for _, m := range ms {
			if _, err := tx.Exec(ctx, `INSERT INTO sale_minutes (product_id, `+saleMinuteCols+`, rolled_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
				ON CONFLICT (product_id, minute) DO NOTHING`,
				productID, m.Minute, m.ReserveOK, m.OutOfStock, m.LimitExceeded, m.NotAdmitted, m.NotOpen, m.RateLimited,
				m.Released, m.Expired, m.CheckedOut, m.Paid, m.QueueJoined, m.Available, m.Held, m.Serving,
				m.ReserveMsP50, m.ReserveMsP99, m.PeakReservesPerS, m.SoldOutAt, next); err != nil {
				return fmt.Errorf("insert sale minute: %w", translate(err))
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sale_minute_cursors (product_id, rolled_to) VALUES ($1, $2)
			ON CONFLICT (product_id) DO UPDATE SET rolled_to = GREATEST(sale_minute_cursors.rolled_to, EXCLUDED.rolled_to)`,
			productID, next); err != nil {
			return fmt.Errorf("move sale minute cursor: %w", translate(err))
		}
		return nil
	})
}

// Overdue counts the refunds requested before refundBefore and not done (the order still
// paid), and the draws whose draw_at is before drawBefore and that have not run.
func (s *Store) Overdue(ctx context.Context, refundBefore, drawBefore time.Time) (refunds, draws int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM orders WHERE status = 'paid' AND refund_requested_at IS NOT NULL AND refund_requested_at < $1),
		(SELECT count(*) FROM draws WHERE drawn_at IS NULL AND draw_at < $2)`, refundBefore, drawBefore).Scan(&refunds, &draws)
	if err != nil {
		return 0, 0, fmt.Errorf("count overdue refunds and draws: %w", translate(err))
	}
	return refunds, draws, nil
}
