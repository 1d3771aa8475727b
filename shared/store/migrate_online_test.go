package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"lastunit/shared/shop"
	"lastunit/shared/store"
)

// today is the store code before variants (commit 0f864bb, shared/store), statement for
// statement: the reserve's insert (fast path and plain), the release, the restock, and the
// fulfillment's stock move. The migration to variants must run while these still serve
// traffic through the pooler (as old Lambda versions do during a deploy), and keep working
// under them afterwards.
type today struct{ pool *pgxpool.Pool }

const todayFast = `
		WITH p AS (SELECT id FROM products WHERE id = $2 AND gate_gen = $7 FOR KEY SHARE),
		s AS (UPDATE product_slots SET free = free - $4, ver = greatest(ver, $9)
			WHERE product_id = $2 AND slot = $10 AND free >= $4 AND $5::timestamptz > $8::timestamptz
				AND EXISTS (SELECT 1 FROM p)
			RETURNING slot),
		r AS (INSERT INTO reservations (id, product_id, user_id, quantity, status, expires_at, created_at, updated_at, gate_version, units_taken)
			SELECT $1, p.id, $3, $4, 'reserved', $5, $6, $6, $9, true FROM p, s
			RETURNING id) SELECT (SELECT count(*) FROM p), count(*) FROM r`

const todayPlain = `
		WITH p AS (SELECT id FROM products WHERE id = $2 AND gate_gen = $7 FOR KEY SHARE),
		r AS (INSERT INTO reservations (id, product_id, user_id, quantity, status, expires_at, created_at, updated_at, gate_version)
			SELECT $1, p.id, $3, $4, 'reserved', $5, $6, $6, $9 FROM p WHERE $5::timestamptz > $8::timestamptz
				AND $10::int >= 0
			RETURNING id) SELECT (SELECT count(*) FROM p), count(*) FROM r`

// reserve records a hold as today's InsertHold does (the gate is not part of this test: the
// generation is read first, as the gate would have it), retrying a changed generation as
// today's reserve does after a rebuild. It returns the hold's id.
func (o today) reserve(ctx context.Context, product, user string, now time.Time) (string, error) {
	for {
		var gen int64
		if err := o.pool.QueryRow(ctx, `SELECT gate_gen FROM products WHERE id = $1`, product).Scan(&gen); err != nil {
			return "", fmt.Errorf("read generation: %w", err)
		}
		id := shop.NewID("r_")
		args := []any{id, product, user, int64(1), now.Add(10 * time.Minute), now, gen, now, int64(0), rand.IntN(64)}
		var found, n int
		err := o.pool.QueryRow(ctx, todayFast, args...).Scan(&found, &n)
		if err == nil && n == 0 && found == 1 {
			err = o.pool.QueryRow(ctx, todayPlain, args...).Scan(&found, &n)
		}
		if err != nil {
			return "", fmt.Errorf("insert hold: %w", err)
		}
		if n == 1 {
			return id, nil
		}
	}
}

func (o today) release(ctx context.Context, id, user string, now time.Time) error {
	_, err := o.pool.Exec(ctx, `UPDATE reservations SET status = 'released', updated_at = $3
		WHERE id = $1 AND user_id = $2 AND status = 'reserved' RETURNING id`, id, user, now)
	return err
}

func (o today) restock(ctx context.Context, product string, delta int64, now time.Time) error {
	return pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM products WHERE id = $1 FOR UPDATE`, product); err != nil {
			return err
		}
		var stock, free int64
		if err := tx.QueryRow(ctx, `SELECT stock FROM products WHERE id = $1`, product).Scan(&stock); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT COALESCE(sum(free), 0) FROM
			(SELECT free FROM product_slots WHERE product_id = $1 ORDER BY slot FOR UPDATE) x`, product).Scan(&free); err != nil {
			return err
		}
		held := stock - free
		if _, err := tx.Exec(ctx, `UPDATE products SET stock = $2, gate_gen = nextval('gate_generations'), updated_at = $3
			WHERE id = $1 RETURNING gate_gen`, product, stock+delta, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT lu_spread($1, $2)`, product, stock+delta-held)
		return err
	})
}

// fulfill moves a live hold to fulfilled and its unit from stock to sold, as today's
// FulfillOrder does for an order of one hold.
func (o today) fulfill(ctx context.Context, id string, now time.Time) error {
	return pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE reservations SET status = 'fulfilled', updated_at = $2
			WHERE id = $1 AND status IN ('reserved', 'checked_out')`, id, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE products p SET stock = p.stock - h.qty, sold = p.sold + h.qty, updated_at = $2
			FROM (SELECT product_id, sum(quantity) AS qty FROM reservations WHERE id = ANY($1) AND status = 'fulfilled' GROUP BY product_id) h
			WHERE p.id = h.product_id`, []string{id}, now)
		return err
	})
}

// freshDatabase creates an empty database (no migrations) reached through PgBouncer.
func freshDatabase(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	adminURL := os.Getenv("TEST_DATABASE_URL")
	if adminURL == "" {
		adminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	pooler := os.Getenv("TEST_POOLER_ADDR")
	if pooler == "" {
		pooler = "127.0.0.1:6432"
	}
	if c, err := net.DialTimeout("tcp", pooler, 2*time.Second); err != nil {
		t.Fatalf("pgbouncer is not reachable at %s: %v (start it with `make services`)", pooler, err)
	} else {
		c.Close()
	}
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("postgres is not reachable at %s: %v (start it with `make services`)", adminURL, err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("lu_test_mig_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	pool, err := store.Open(ctx, fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", pooler, name), 24)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		c, err := pgx.Connect(context.Background(), adminURL)
		if err == nil {
			defer c.Close(context.Background())
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
	})
	return pool
}

// TestVariantsMigrationUnderTodaysTraffic: a database at today's schema, with live holds and
// paid and fulfilled units, is migrated to variants while today's code keeps reserving,
// releasing, restocking and fulfilling through PgBouncer. No request of today's code fails,
// before, during or after the migration; afterwards every product has its one variant,
// `default`, with every unit accounted for (stock, sold, free slots and live holds agree per
// variant and per product, and every hold and order item names the variant), and the new code
// reads and reserves it.
func TestVariantsMigrationUnderTodaysTraffic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := freshDatabase(t)
	if err := store.MigrateUpTo(ctx, pool, 39); err != nil {
		t.Fatalf("migrate to today's schema: %v", err)
	}
	old := today{pool}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	products := []string{"tee", "cap", "mug"}
	const initial = 100_000
	for _, p := range products {
		// Today's UpsertProduct, in short: the row, then its free units spread over the slots.
		if _, err := pool.Exec(ctx, `INSERT INTO products (id, name, price_cents, currency, stock, max_per_user, gate_gen, created_at, updated_at)
			VALUES ($1, $1, 1500, 'usd', $2, 1000000, nextval('gate_generations'), $3, $3)`, p, initial, now); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `SELECT lu_spread($1, $2)`, p, initial); err != nil {
			t.Fatal(err)
		}
	}
	// Live holds, a paid order (checked-out holds) and fulfilled units, at today's schema.
	var live []string
	for i := range 30 {
		id, err := old.reserve(ctx, products[i%3], fmt.Sprintf("early-%d", i), now)
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, id)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO orders (id, user_id, status, amount_cents, currency, payment_expires_at, created_at, updated_at)
		VALUES ('o_paid', 'early-0', 'paid', 1500, 'usd', $1, $1, $1)`, now.Add(15*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE reservations SET status = 'checked_out', order_id = 'o_paid' WHERE id = $1`, live[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO order_items (order_id, reservation_id, product_id, quantity, unit_price_cents, hold_expires_at)
		VALUES ('o_paid', $1, 'tee', 1, 1500, $2)`, live[0], now.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, id := range live[1:6] {
		if err := old.fulfill(ctx, id, now); err != nil {
			t.Fatal(err)
		}
	}

	// Today's traffic, until told to stop: every failure is a request that failed.
	var stop atomic.Bool
	var requests atomic.Int64
	var restocked [3]atomic.Int64
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
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				p, user := products[(w+i)%3], fmt.Sprintf("w%d", w)
				id, err := old.reserve(ctx, p, user, now)
				requests.Add(1)
				if err != nil {
					fail(fmt.Errorf("reserve %s: %w", p, err))
					continue
				}
				switch i % 4 {
				case 0:
					err = old.release(ctx, id, user, now)
				case 1:
					err = old.fulfill(ctx, id, now)
				}
				requests.Add(1)
				if err != nil {
					fail(fmt.Errorf("release or fulfill %s: %w", id, err))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			if err := old.restock(ctx, products[i%3], 7, now); err != nil {
				fail(fmt.Errorf("restock: %w", err))
			} else {
				restocked[i%3].Add(7)
			}
			requests.Add(1)
			time.Sleep(20 * time.Millisecond) // an admin restocking 50 times a second
		}
	}()

	waitFor := func(n int64) {
		for target := requests.Load() + n; requests.Load() < target && !t.Failed(); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(300) // traffic before
	before := requests.Load()
	if err := store.Migrate(ctx, pool); err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatalf("migrate under traffic: %v", err)
	}
	during := requests.Load() - before
	waitFor(300) // traffic after, on the migrated schema
	stop.Store(true)
	wg.Wait()
	for _, err := range failures {
		t.Errorf("today's code failed: %v", err)
	}
	if during == 0 {
		t.Errorf("no request of today's code ran while the migration did")
	}
	t.Logf("%d requests of today's code, %d while the migration ran", requests.Load(), during)

	// Every unit accounted for, per variant and per product.
	for i, p := range products {
		var vs []string
		var stock, sold, pStock, pSold, free, held, fulfilled int64
		if err := pool.QueryRow(ctx, `SELECT array_agg(id), sum(stock), sum(sold) FROM product_variants WHERE product_id = $1`, p).Scan(&vs, &stock, &sold); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRow(ctx, `SELECT stock, sold FROM products WHERE id = $1`, p).Scan(&pStock, &pSold); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRow(ctx, `SELECT COALESCE(sum(free), 0) FROM product_slots WHERE product_id = $1 AND variant_id = 'default'`, p).Scan(&free); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRow(ctx, `SELECT COALESCE(sum(quantity) FILTER (WHERE status IN ('reserved', 'checked_out')), 0),
			COALESCE(sum(quantity) FILTER (WHERE status = 'fulfilled'), 0) FROM reservations WHERE product_id = $1`, p).Scan(&held, &fulfilled); err != nil {
			t.Fatal(err)
		}
		if len(vs) != 1 || vs[0] != shop.DefaultVariant {
			t.Errorf("%s: variants %v, want [default]", p, vs)
		}
		if stock != pStock || sold != pSold {
			t.Errorf("%s: variant stock %d sold %d, product stock %d sold %d", p, stock, sold, pStock, pSold)
		}
		if stock+sold != initial+restocked[i].Load() || sold != fulfilled {
			t.Errorf("%s: stock %d + sold %d != %d units ever had; sold %d, fulfilled holds %d", p, stock, sold, initial+restocked[i].Load(), sold, fulfilled)
		}
		if free+held != stock {
			t.Errorf("%s: free %d + held %d != stock %d", p, free, held, stock)
		}
	}
	var other int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM reservations WHERE variant_id <> 'default')
		+ (SELECT count(*) FROM order_items WHERE variant_id <> 'default')
		+ (SELECT count(*) FROM product_slots WHERE variant_id <> 'default')`).Scan(&other); err != nil || other != 0 {
		t.Errorf("rows naming another variant than default: %d (%v)", other, err)
	}
	var badUsers int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM product_users pu FULL JOIN (SELECT product_id, user_id, sum(quantity) AS n
		FROM reservations WHERE status IN ('reserved', 'checked_out', 'fulfilled') GROUP BY 1, 2) r USING (product_id, user_id)
		WHERE COALESCE(pu.units, 0) <> COALESCE(r.n, 0)`).Scan(&badUsers); err != nil || badUsers != 0 {
		t.Errorf("product_users disagrees with the holds for %d shoppers (%v)", badUsers, err)
	}

	// The new code reads and holds the migrated product.
	st := store.New(pool)
	row, err := st.Product(ctx, "tee")
	if err != nil || len(row.Variants) != 1 || row.Variants[0].ID != shop.DefaultVariant || row.Variants[0].Name != "tee" {
		t.Fatalf("new code reads %+v, %v", row, err)
	}
	ok, err := st.InsertHold(ctx, shop.Reservation{ID: shop.NewID("r_"), ProductID: "tee", VariantID: shop.DefaultVariant, UserID: "new",
		Quantity: 1, Status: shop.StatusReserved, ExpiresAt: now.Add(time.Minute), CreatedAt: now}, row.Gen, 1, now, nil)
	if err != nil || !ok {
		t.Fatalf("new code's hold on a migrated product: %v %v", ok, err)
	}
	if _, err := st.Restock(ctx, "tee", "", 1, now); err != nil {
		t.Fatalf("new code's restock of a migrated product: %v", err)
	}
	// Migrating again changes nothing.
	if err := store.Migrate(ctx, pool); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
