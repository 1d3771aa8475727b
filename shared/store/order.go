package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"lastunit/shared/shop"
)

// CartHolds returns the user's holds among ids (any status) with their variants' prices,
// or with no ids every reserved hold of the user whose deadline is after now.
func (s *Store) CartHolds(ctx context.Context, userID string, ids []string, now time.Time) ([]shop.CartHold, error) {
	q := `SELECT r.id, r.product_id, r.variant_id, r.user_id, r.quantity, r.status, r.expires_at, r.created_at, r.order_id,
			COALESCE(v.price_cents, p.price_cents), p.currency
		FROM reservations r JOIN products p ON p.id = r.product_id
			JOIN product_variants v ON v.product_id = r.product_id AND v.id = r.variant_id
		WHERE r.user_id = $1 `
	args := []any{userID}
	if len(ids) > 0 {
		q += `AND r.id = ANY($2)`
		args = append(args, ids)
	} else {
		q += `AND r.status = 'reserved' AND r.expires_at > $2`
		args = append(args, now)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY r.created_at, r.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("select cart: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (shop.CartHold, error) {
		var h shop.CartHold
		err := row.Scan(&h.ID, &h.ProductID, &h.VariantID, &h.UserID, &h.Quantity, &h.Status, &h.ExpiresAt, &h.CreatedAt, &h.OrderID, &h.UnitPriceCents, &h.Currency)
		h.ExpiresAt, h.CreatedAt = h.ExpiresAt.UTC(), h.CreatedAt.UTC()
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("select cart: %w", translate(err))
	}
	return out, nil
}

// CreateOrder inserts the order and checks its holds out, in one transaction.
func (s *Store) CreateOrder(ctx context.Context, o shop.Order, now time.Time) ([]string, error) {
	var failed []string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO orders (id, user_id, status, amount_cents, currency, payment_expires_at, created_at, updated_at)
			VALUES ($1, $2, 'payment_pending', $3, $4, $5, $6, $6)`, o.ID, o.UserID, o.AmountCents, o.Currency, o.PaymentExpiresAt, o.CreatedAt)
		if err != nil {
			return fmt.Errorf("insert order: %w", translate(err))
		}
		ids := make([]string, len(o.Items))
		for i, it := range o.Items {
			ids[i] = it.ReservationID
		}
		rows, err := tx.Query(ctx, `UPDATE reservations SET status = 'checked_out', expires_at = $3, order_id = $4, updated_at = $5
			WHERE id = ANY($1) AND user_id = $2 AND status = 'reserved' AND expires_at > $5 RETURNING id`,
			ids, o.UserID, o.PaymentExpiresAt, o.ID, now)
		if err != nil {
			return fmt.Errorf("check out reservations: %w", translate(err))
		}
		moved, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("check out reservations: %w", translate(err))
		}
		if len(moved) != len(ids) {
			got := make(map[string]bool, len(moved))
			for _, id := range moved {
				got[id] = true
			}
			for _, id := range ids {
				if !got[id] {
					failed = append(failed, id)
				}
			}
			return errNotSet // roll back
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"order_items"},
			[]string{"order_id", "reservation_id", "product_id", "variant_id", "quantity", "unit_price_cents", "hold_expires_at"},
			pgx.CopyFromSlice(len(o.Items), func(i int) ([]any, error) {
				it := o.Items[i]
				return []any{o.ID, it.ReservationID, it.ProductID, it.VariantID, it.Quantity, it.UnitPriceCents, it.HoldExpiresAt}, nil
			}))
		if err != nil {
			return fmt.Errorf("insert order items: %w", translate(err))
		}
		return nil
	})
	if errors.Is(err, errNotSet) {
		return failed, nil
	}
	return nil, err
}

// AttachPayment records the order's PaymentIntent while it is payment_pending.
func (s *Store) AttachPayment(ctx context.Context, orderID, paymentIntentID, clientSecret string, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE orders SET payment_intent_id = $2, client_secret = $3, updated_at = $4
		WHERE id = $1 AND status = 'payment_pending'`, orderID, paymentIntentID, clientSecret, now)
	if err != nil {
		return fmt.Errorf("attach payment: %w", translate(err))
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("attach payment: order %s is no longer payment_pending", orderID)
	}
	return nil
}

// UndoCheckout puts the order's holds back to reserved with their original deadlines and
// deletes the order.
func (s *Store) UndoCheckout(ctx context.Context, orderID string, now time.Time) ([]shop.OrderItem, error) {
	var items []shop.OrderItem
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		if items, err = orderItems(ctx, tx, orderID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE reservations r SET status = 'reserved', expires_at = i.hold_expires_at, order_id = NULL, updated_at = $2
			FROM order_items i WHERE i.order_id = $1 AND r.id = i.reservation_id AND r.status = 'checked_out'`, orderID, now); err != nil {
			return fmt.Errorf("undo checkout: %w", translate(err))
		}
		if _, err := tx.Exec(ctx, `DELETE FROM orders WHERE id = $1 AND status = 'payment_pending'`, orderID); err != nil {
			return fmt.Errorf("delete order: %w", translate(err))
		}
		return nil
	})
	return items, err
}

func orderItems(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, orderID string) ([]shop.OrderItem, error) {
	rows, err := q.Query(ctx, `SELECT reservation_id, product_id, variant_id, quantity, unit_price_cents, hold_expires_at
		FROM order_items WHERE order_id = $1 ORDER BY reservation_id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("select order items: %w", translate(err))
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (shop.OrderItem, error) {
		var it shop.OrderItem
		err := row.Scan(&it.ReservationID, &it.ProductID, &it.VariantID, &it.Quantity, &it.UnitPriceCents, &it.HoldExpiresAt)
		it.HoldExpiresAt = it.HoldExpiresAt.UTC()
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("select order items: %w", translate(err))
	}
	return items, nil
}

const orderCols = `id, user_id, status, amount_cents, currency, payment_intent_id, client_secret, payment_expires_at,
	created_at, updated_at, attempts, COALESCE(last_error, ''), failed_at, refund_requested_at`

func scanOrder(row pgx.Row) (shop.Order, error) {
	var o shop.Order
	err := row.Scan(&o.ID, &o.UserID, &o.Status, &o.AmountCents, &o.Currency, &o.PaymentIntentID, &o.ClientSecret,
		&o.PaymentExpiresAt, &o.CreatedAt, &o.UpdatedAt, &o.Attempts, &o.LastError, &o.FailedAt, &o.RefundRequestedAt)
	o.PaymentExpiresAt, o.CreatedAt, o.UpdatedAt = o.PaymentExpiresAt.UTC(), o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	for _, t := range []**time.Time{&o.FailedAt, &o.RefundRequestedAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return o, err
}

func (s *Store) orderWhere(ctx context.Context, where string, arg any) (shop.Order, error) {
	o, err := scanOrder(s.pool.QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE `+where, arg))
	if err != nil {
		return shop.Order{}, fmt.Errorf("select order: %w", translate(err))
	}
	if o.Items, err = orderItems(ctx, s.pool, o.ID); err != nil {
		return shop.Order{}, err
	}
	return o, nil
}

// Order returns one order with its items.
func (s *Store) Order(ctx context.Context, id string) (shop.Order, error) {
	return s.orderWhere(ctx, `id = $1`, id)
}

// OrderByPaymentIntent returns the order paid by a PaymentIntent.
func (s *Store) OrderByPaymentIntent(ctx context.Context, paymentIntentID string) (shop.Order, error) {
	return s.orderWhere(ctx, `payment_intent_id = $1`, paymentIntentID)
}

// DuePayments returns up to limit payment_pending orders whose deadline is not after now.
func (s *Store) DuePayments(ctx context.Context, now time.Time, limit int) ([]shop.Order, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+orderCols+` FROM orders
		WHERE status = 'payment_pending' AND payment_expires_at <= $1 ORDER BY payment_expires_at LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("select due payments: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (shop.Order, error) { return scanOrder(row) })
	if err != nil {
		return nil, fmt.Errorf("select due payments: %w", translate(err))
	}
	return out, nil
}

// EndOrder moves an order from one status to another and its checked-out holds to
// holdStatus, in one transaction.
func (s *Store) EndOrder(ctx context.Context, orderID, from, to, holdStatus string, now time.Time) ([]shop.Reservation, bool, error) {
	var holds []shop.Reservation
	moved := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE orders SET status = $3, client_secret = NULL, updated_at = $4 WHERE id = $1 AND status = $2`,
			orderID, from, to, now)
		if err != nil {
			return fmt.Errorf("end order: %w", translate(err))
		}
		if tag.RowsAffected() != 1 {
			return nil
		}
		moved = true
		rows, err := tx.Query(ctx, `UPDATE reservations SET status = $2, updated_at = $3
			WHERE order_id = $1 AND status = 'checked_out' RETURNING `+reservationCols, orderID, holdStatus, now)
		if err != nil {
			return fmt.Errorf("end order holds: %w", translate(err))
		}
		holds, err = pgx.CollectRows(rows, scanReservation)
		return translate(err)
	})
	return holds, moved, err
}

// MarkPaid moves an order from payment_pending to paid.
func (s *Store) MarkPaid(ctx context.Context, orderID, paymentIntentID string, now time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE orders SET status = 'paid', client_secret = NULL, updated_at = $3,
		payment_intent_id = COALESCE(payment_intent_id, $2) WHERE id = $1 AND status = 'payment_pending'`, orderID, paymentIntentID, now)
	if err != nil {
		return false, fmt.Errorf("mark order paid: %w", translate(err))
	}
	return tag.RowsAffected() == 1, nil
}

// RetakeOrder locks an expired order, calls take (which takes its units in the gate), and
// then moves the order to paid and its expired holds back to checked_out, only while every
// product's gate generation is still the one take saw (checked under FOR KEY SHARE, which a
// gate rebuild waits for). The lock serializes concurrent deliveries of the same payment.
// A COMMIT sent but not answered is shop.ErrMaybeWritten: the order may be paid.
func (s *Store) RetakeOrder(ctx context.Context, orderID string, deadline, now time.Time, take func() (map[string]int64, string, error)) (shop.RetakeResult, error) {
	var res shop.RetakeResult
	err := s.txCommitUnknown(ctx, func(tx pgx.Tx) error {
		var status string
		if err := tx.QueryRow(ctx, `SELECT status FROM orders WHERE id = $1 FOR UPDATE`, orderID).Scan(&status); err != nil {
			return fmt.Errorf("lock order: %w", translate(err))
		}
		if status != shop.OrderExpired {
			res.Outcome = shop.RetakeGone
			return nil
		}
		gens, short, err := take()
		if err != nil {
			return err
		}
		if short != "" {
			// Decided under the lock: refunded, so no later delivery can take units again.
			res.Outcome, res.Short = shop.RetakeShort, short
			_, err := tx.Exec(ctx, `UPDATE orders SET status = 'refunded', updated_at = $2 WHERE id = $1`, orderID, now)
			return translate(err)
		}
		res.Took = true
		ids := make([]string, 0, len(gens))
		want := make([]int64, 0, len(gens))
		for id, g := range gens {
			ids, want = append(ids, id), append(want, g)
		}
		// The products whose gate took the units under a generation Postgres no longer has:
		// an older copy after a failover (it must be dropped, or every retry takes from it
		// again), or a rebuild in progress.
		var current []string
		if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(x.id), '{}') FROM (SELECT p.id FROM products p JOIN unnest($1::text[], $2::bigint[]) AS g(id, gen)
			ON p.id = g.id AND p.gate_gen = g.gen FOR KEY SHARE OF p) x`, ids, want).Scan(&current); err != nil {
			return fmt.Errorf("check gate generations: %w", translate(err))
		}
		if len(current) != len(gens) {
			res.Outcome = shop.RetakeGateChanged
			for _, id := range ids {
				if !slices.Contains(current, id) {
					res.Stale, res.StaleGen = id, gens[id]
					break
				}
			}
			return nil
		}
		// The holds' units are taken again in Postgres by the reservations trigger, which
		// refuses (LU001) when the product's free units cannot cover them: the gate that
		// granted them is stale. Only that step is undone, under a savepoint.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("savepoint: %w", translate(err))
		}
		if _, err := sp.Exec(ctx, `UPDATE orders SET status = 'paid', updated_at = $2 WHERE id = $1`, orderID, now); err != nil {
			return fmt.Errorf("retake order: %w", translate(err))
		}
		if _, err := sp.Exec(ctx, `UPDATE reservations SET status = 'checked_out', expires_at = $2, updated_at = $3
			WHERE order_id = $1 AND status = 'expired'`, orderID, deadline, now); err != nil {
			if pe, ok := isShort(err); ok {
				if rerr := sp.Rollback(ctx); rerr != nil {
					return fmt.Errorf("rollback to savepoint: %w", translate(rerr))
				}
				if pe.Code == codeOverLimit {
					// The shopper holds or bought max_per_user units of the product meanwhile
					// (or an admin lowered it): the limit is a fact of Postgres, not a stale
					// gate, so no retry can pass it. Refunded, decided under the lock.
					res.Outcome, res.Short = shop.RetakeOverLimit, pe.Detail
					_, err := tx.Exec(ctx, `UPDATE orders SET status = 'refunded', updated_at = $2 WHERE id = $1`, orderID, now)
					return translate(err)
				}
				res.Outcome, res.Stale, res.StaleGen = shop.RetakeGateChanged, pe.Detail, gens[pe.Detail]
				return nil
			}
			return fmt.Errorf("retake holds: %w", translate(err))
		}
		if err := sp.Commit(ctx); err != nil {
			return fmt.Errorf("release savepoint: %w", translate(err))
		}
		res.Outcome = shop.RetakeDone
		return nil
	})
	return res, err
}

// ReconcileDue returns up to limit orders Stripe may still have a say about (expired or
// refunded, with a PaymentIntent, not settled) that were not checked since checkedBefore,
// least recently checked first, with their items.
func (s *Store) ReconcileDue(ctx context.Context, checkedBefore time.Time, limit int) ([]shop.Order, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+orderCols+` FROM orders
		WHERE status IN ('expired', 'refunded') AND payment_intent_id IS NOT NULL AND settled_at IS NULL
			AND (checked_at IS NULL OR checked_at < $1)
		ORDER BY checked_at NULLS FIRST, id LIMIT $2`, checkedBefore, limit)
	if err != nil {
		return nil, fmt.Errorf("select orders to reconcile: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (shop.Order, error) { return scanOrder(row) })
	if err != nil {
		return nil, fmt.Errorf("select orders to reconcile: %w", translate(err))
	}
	for i := range out {
		if out[i].Items, err = orderItems(ctx, s.pool, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// NoteChecked records that Stripe was asked about an order at now and, with settled, that
// it has nothing more to say (never asked again). It never unsettles an order.
func (s *Store) NoteChecked(ctx context.Context, orderID string, settled bool, now time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE orders SET checked_at = $2,
		settled_at = CASE WHEN $3 THEN COALESCE(settled_at, $2) ELSE settled_at END WHERE id = $1`, orderID, now, settled); err != nil {
		return fmt.Errorf("note order checked with stripe: %w", translate(err))
	}
	return nil
}

// EventSeen reports whether a Stripe event was handled already.
func (s *Store) EventSeen(ctx context.Context, eventID string) (bool, error) {
	var seen bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stripe_events WHERE id = $1)`, eventID).Scan(&seen); err != nil {
		return false, fmt.Errorf("select stripe event: %w", translate(err))
	}
	return seen, nil
}

// RecordEvent remembers a handled Stripe event.
func (s *Store) RecordEvent(ctx context.Context, eventID, eventType string, now time.Time) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO stripe_events (id, type, processed_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
		eventID, eventType, now); err != nil {
		return fmt.Errorf("insert stripe event: %w", translate(err))
	}
	return nil
}

// ClaimIdem records a pending idempotency record unless one exists (a pending one older
// than staleBefore is taken over), else returns the existing one.
func (s *Store) ClaimIdem(ctx context.Context, userID, key, requestHash string, now, staleBefore time.Time) (shop.IdemRecord, bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO idempotency_keys (user_id, key, request_hash, status, body, created_at)
		VALUES ($1, $2, $3, 0, '', $4)
		ON CONFLICT (user_id, key) DO UPDATE SET request_hash = $3, created_at = $4
			WHERE idempotency_keys.status = 0 AND idempotency_keys.created_at < $5`, userID, key, requestHash, now, staleBefore)
	if err != nil {
		return shop.IdemRecord{}, false, fmt.Errorf("claim idempotency key: %w", translate(err))
	}
	if tag.RowsAffected() == 1 {
		return shop.IdemRecord{UserID: userID, Key: key, RequestHash: requestHash, CreatedAt: now}, true, nil
	}
	rec, err := s.Idem(ctx, userID, key)
	if errors.Is(err, shop.ErrNotFound) {
		return s.ClaimIdem(ctx, userID, key, requestHash, now, staleBefore) // dropped meanwhile
	}
	return rec, false, err
}

// CompleteIdem stores the answer of a claimed record.
func (s *Store) CompleteIdem(ctx context.Context, userID, key string, status int, body []byte) error {
	if _, err := s.pool.Exec(ctx, `UPDATE idempotency_keys SET status = $3, body = $4 WHERE user_id = $1 AND key = $2`,
		userID, key, status, body); err != nil {
		return fmt.Errorf("complete idempotency record: %w", translate(err))
	}
	return nil
}

// DropIdem forgets a claimed record that is still pending.
func (s *Store) DropIdem(ctx context.Context, userID, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND status = 0`, userID, key); err != nil {
		return fmt.Errorf("drop idempotency record: %w", translate(err))
	}
	return nil
}
