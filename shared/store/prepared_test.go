package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"lastunit/shared/shop"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// preparedCount is how many named prepared statements the connection that runs it holds, and
// how many of them run the reserve's write.
func preparedCount(t *testing.T, pool *pgxpool.Pool) (all, holds int) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE statement LIKE '%lu_take_hold%')
		FROM pg_prepared_statements`).Scan(&all, &holds); err != nil {
		t.Fatal(err)
	}
	return all, holds
}

// TestPreparedStatements: by default the pool never creates a named prepared statement (what
// lets it run through PgBouncer in transaction mode and RDS Proxy without pinning);
// WithPreparedStatements prepares the reserve's write once per connection, and the
// guarantees hold the same under a burst: 300 reserves from 100 shoppers (3 each, max_per_user
// 2) on 16 connections for 150 units sell exactly 150, nobody over the limit, and every slot,
// shopper row and hold agrees.
func TestPreparedStatements(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		opts     []store.Option
		prepared bool
	}{
		{"unnamed (default)", nil, false},
		{"prepared", []store.Option{store.WithPreparedStatements()}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const stock, limit, shoppers, tries = 150, 2, 100, 3
			ctx := context.Background()
			_, url := testenv.Postgres(t)
			pool, err := store.Open(ctx, testenv.Direct(t, url), 16, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			st := store.New(pool)
			now := testenv.Start
			p, err := st.UpsertProduct(ctx, "drop", shop.ProductInput{Name: "drop", Currency: "usd", Stock: stock, MaxPerUser: limit}, now)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			outcomes := map[string]int{}
			var wg sync.WaitGroup
			for i := range shoppers * tries {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := shop.Reservation{ID: shop.NewID("r_"), ProductID: "drop", VariantID: "default", UserID: fmt.Sprintf("u%d", i%shoppers),
						Quantity: 1, Status: "reserved", ExpiresAt: now.Add(time.Hour), CreatedAt: now}
					ok, err := st.InsertHold(ctx, r, p.Gen, 1, now, nil)
					out := "ok"
					switch {
					case errors.Is(err, shop.ErrGateStale):
						out = "refused"
					case err != nil:
						out = err.Error()
					case !ok:
						out = "false"
					}
					mu.Lock()
					outcomes[out]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			if outcomes["ok"] != stock || outcomes["refused"] != shoppers*tries-stock || len(outcomes) != 2 {
				t.Fatalf("outcomes %v, want %d ok and %d refused (sold out or over the limit)", outcomes, stock, shoppers*tries-stock)
			}
			var holds, free, over, mismatched int64
			if err := pool.QueryRow(ctx, `SELECT
					(SELECT count(*) FROM reservations WHERE product_id = 'drop' AND status = 'reserved'),
					(SELECT sum(free) FROM product_slots WHERE product_id = 'drop'),
					(SELECT count(*) FROM product_users WHERE product_id = 'drop' AND units > $1),
					(SELECT count(*) FROM product_users u FULL JOIN (SELECT user_id, sum(quantity) q FROM reservations
						WHERE product_id = 'drop' AND status = 'reserved' GROUP BY user_id) h USING (user_id)
					  WHERE coalesce(u.units, 0) <> coalesce(h.q, 0))`, limit).Scan(&holds, &free, &over, &mismatched); err != nil {
				t.Fatal(err)
			}
			if holds != stock || free != 0 || over != 0 || mismatched != 0 {
				t.Fatalf("holds %d (want %d), free units %d (want 0), shoppers over the limit %d, shopper rows unlike their holds %d",
					holds, stock, free, over, mismatched)
			}
			all, withHold := preparedCount(t, pool)
			if tc.prepared && withHold != 1 {
				t.Fatalf("a connection holds %d prepared statements of the reserve's write (of %d), want 1", withHold, all)
			}
			if !tc.prepared && all != 0 {
				t.Fatalf("the default pool created %d named prepared statements, want none", all)
			}
		})
	}
}
