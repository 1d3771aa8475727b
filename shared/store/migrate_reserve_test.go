package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"lastunit/shared/shop"
	"lastunit/shared/store"
)

// mainFast and mainPlain are the reserve's statements of main before issue 20 (commit b6f7e05,
// store.InsertHold): the fast path with variants, whose shopper is counted by the trigger of
// migration 0031, and the slot-short path.
const mainFast = `
		WITH p AS (SELECT id FROM products WHERE id = $2 AND gate_gen = $7 FOR KEY SHARE),
		s AS (UPDATE product_slots SET free = free - $4, ver = greatest(ver, $9)
			WHERE product_id = $2 AND variant_id = $11 AND slot = $10 AND free >= $4 AND $5::timestamptz > $8::timestamptz
				AND EXISTS (SELECT 1 FROM p)
			RETURNING slot),
		r AS (INSERT INTO reservations (id, product_id, variant_id, user_id, quantity, status, expires_at, created_at, updated_at, gate_version, units_taken)
			SELECT $1, p.id, $11, $3, $4, 'reserved', $5, $6, $6, $9, true FROM p, s
			RETURNING id) SELECT (SELECT count(*) FROM p), count(*) FROM r`

const mainPlain = `
		WITH p AS (SELECT id FROM products WHERE id = $2 AND gate_gen = $7 FOR KEY SHARE),
		r AS (INSERT INTO reservations (id, product_id, variant_id, user_id, quantity, status, expires_at, created_at, updated_at, gate_version)
			SELECT $1, p.id, $11, $3, $4, 'reserved', $5, $6, $6, $9 FROM p WHERE $5::timestamptz > $8::timestamptz
				AND $10::int >= 0
			RETURNING id) SELECT (SELECT count(*) FROM p), count(*) FROM r`

// TestReservePathMigrationUnderMainsTraffic: migrations 0060 to 0062 (the shopper counted in
// the reserve's own write, the holds' key to products dropped, lu_insert_hold) run while
// main's reserve statements serve traffic through the pooler, with shoppers reaching their
// max_per_user, and while the new code reserves too. No request fails except by the limit
// (LU003, which the reserve answers as a stale gate); afterwards every shopper's
// product_users row equals the units of their holds (counted once, by the trigger for main's
// inserts and by lu_insert_hold for the new code's), and per product free slots plus live
// holds equal stock.
func TestReservePathMigrationUnderMainsTraffic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := freshDatabase(t)
	if err := store.MigrateUpTo(ctx, pool, 59); err != nil {
		t.Fatalf("migrate to main's schema: %v", err)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	products := []string{"tee", "cap"}
	const stock, limit = 100_000, 3
	for _, p := range products {
		if _, err := pool.Exec(ctx, `INSERT INTO products (id, name, price_cents, currency, stock, max_per_user, gate_gen, created_at, updated_at)
			VALUES ($1, $1, 1500, 'usd', $2, $3, nextval('gate_generations'), $4, $4)`, p, stock, limit, now); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `SELECT lu_spread($1, $2)`, p, stock); err != nil {
			t.Fatal(err)
		}
	}
	gen := func(p string) int64 {
		var g int64
		if err := pool.QueryRow(ctx, `SELECT gate_gen FROM products WHERE id = $1`, p).Scan(&g); err != nil {
			t.Error(err)
		}
		return g
	}
	overLimit := func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "LU003"
	}
	st := store.New(pool)
	var stop atomic.Bool
	var requests, refused, migrating atomic.Int64
	var mu sync.Mutex
	var failures []error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, err)
		}
	}
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				p := products[(w+i)%2]
				user := fmt.Sprintf("w%d-%d", w, i/16) // 8 reserves of each product per shopper, one released: over the limit
				id := shop.NewID("r_")
				var err error
				if w%3 == 2 && migrating.Load() == 2 {
					// The new code, once the migration is done.
					_, err = st.InsertHold(ctx, shop.Reservation{ID: id, ProductID: p, VariantID: shop.DefaultVariant, UserID: user, Quantity: 1,
						Status: shop.StatusReserved, ExpiresAt: now.Add(time.Hour), CreatedAt: now}, gen(p), 0, now, nil)
					if errors.Is(err, shop.ErrGateStale) {
						refused.Add(1)
						err = nil
					}
				} else {
					args := []any{id, p, user, int64(1), now.Add(time.Hour), now, gen(p), now, int64(0), store.SlotOf(id), shop.DefaultVariant}
					var found, n int
					err = pool.QueryRow(ctx, mainFast, args...).Scan(&found, &n)
					if err == nil && n == 0 && found == 1 {
						err = pool.QueryRow(ctx, mainPlain, args...).Scan(&found, &n)
					}
					if overLimit(err) {
						refused.Add(1)
						err = nil
					}
				}
				requests.Add(1)
				if err != nil {
					fail(fmt.Errorf("reserve %s for %s: %w", p, user, err))
					continue
				}
				if i%8 == 0 {
					if _, err := pool.Exec(ctx, `UPDATE reservations SET status = 'released', updated_at = $2 WHERE id = $1 AND status = 'reserved'`, id, now); err != nil {
						fail(fmt.Errorf("release %s: %w", id, err))
					}
				}
			}
		})
	}
	waitFor := func(n int64) {
		for target := requests.Load() + n; requests.Load() < target && !t.Failed(); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(300)
	before := requests.Load()
	migrating.Store(1)
	if err := store.Migrate(ctx, pool); err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatalf("migrate under traffic: %v", err)
	}
	during := requests.Load() - before
	migrating.Store(2)
	waitFor(600)
	stop.Store(true)
	wg.Wait()
	for _, err := range failures {
		t.Errorf("a request failed: %v", err)
	}
	if during == 0 {
		t.Errorf("no request ran while the migration did")
	}
	if refused.Load() == 0 {
		t.Errorf("no shopper reached max_per_user: the test did not exercise the limit")
	}
	t.Logf("%d reserves, %d refused at the limit, %d while the migration ran", requests.Load(), refused.Load(), during)

	var wrong int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM product_users pu FULL JOIN (
			SELECT product_id, user_id, sum(quantity) AS units FROM reservations
			 WHERE status IN ('reserved', 'checked_out', 'fulfilled') GROUP BY product_id, user_id) h
			USING (product_id, user_id)
		WHERE coalesce(pu.units, 0) <> coalesce(h.units, 0) OR h.units > $1`, limit).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 {
		t.Errorf("%d shoppers whose product_users row differs from their holds or is over the limit", wrong)
	}
	for _, p := range products {
		var free, held int64
		if err := pool.QueryRow(ctx, `SELECT (SELECT sum(free) FROM product_slots WHERE product_id = $1),
				(SELECT coalesce(sum(quantity), 0) FROM reservations WHERE product_id = $1 AND status IN ('reserved', 'checked_out'))`, p).Scan(&free, &held); err != nil {
			t.Fatal(err)
		}
		if free+held != stock {
			t.Errorf("%s: free %d + held %d != stock %d", p, free, held, stock)
		}
	}
}
