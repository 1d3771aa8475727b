package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"lastunit/shared/shop"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// holdID returns a new hold id whose fast-path slot has units (want true) or none (false) on a
// product whose stock is spread over slots 0..stock-1 with one unit each.
func holdID(stock int, fast bool) string {
	for {
		id := shop.NewID("r_")
		if (store.SlotOf(id) < stock) == fast {
			return id
		}
	}
}

// TestInsertHoldCountsTheShopperOnce: the reserve's statement counts the shopper's units
// against max_per_user itself on the fast path (lu_take_hold, migrations 0062 and 0063) and the trigger does on the
// plain path: either way, exactly once. A hold that would go over the limit is refused as a
// stale gate (LU003) on both paths and changes nothing: no hold, no units taken, no count.
func TestInsertHoldCountsTheShopperOnce(t *testing.T) {
	t.Parallel()
	const stock, limit = 10, 3
	for _, tc := range []struct {
		name  string
		paths []bool // per hold of one unit: fast path (its slot has a unit) or plain
	}{
		{"fast path", []bool{true, true, true}},
		{"plain path", []bool{false, false, false}},
		{"both", []bool{true, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool, _ := testenv.Postgres(t)
			st := store.New(pool)
			now := testenv.Start
			p, err := st.UpsertProduct(ctx, "tee", shop.ProductInput{Name: "tee", Currency: "usd", Stock: stock, MaxPerUser: limit}, now)
			if err != nil {
				t.Fatal(err)
			}
			hold := func(id, user string, q int64) (bool, error) {
				r := shop.Reservation{ID: id, ProductID: "tee", VariantID: shop.DefaultVariant, UserID: user, Quantity: q,
					Status: shop.StatusReserved, ExpiresAt: now.Add(time.Hour), CreatedAt: now}
				return st.InsertHold(ctx, r, p.Gen, 1, now, nil)
			}
			check := func(user string, wantUnits, wantFree int64) {
				t.Helper()
				var units, held, free int64
				if err := pool.QueryRow(ctx, `SELECT
						coalesce((SELECT units FROM product_users WHERE product_id = 'tee' AND user_id = $1), 0),
						(SELECT coalesce(sum(quantity), 0) FROM reservations WHERE product_id = 'tee' AND user_id = $1 AND status = 'reserved'),
						(SELECT sum(free) FROM product_slots WHERE product_id = 'tee')`, user).Scan(&units, &held, &free); err != nil {
					t.Fatal(err)
				}
				if units != wantUnits || held != wantUnits || free != wantFree {
					t.Fatalf("%s: product_users %d, held %d, free %d; want %d, %d, %d", user, units, held, free, wantUnits, wantUnits, wantFree)
				}
			}
			for i, fast := range tc.paths {
				ok, err := hold(holdID(stock, fast), "ann", 1)
				if err != nil || !ok {
					t.Fatalf("hold %d (fast %v): %v, %v", i+1, fast, ok, err)
				}
				check("ann", int64(i+1), stock-int64(i+1))
			}
			// At the limit: refused on either path, nothing changes.
			for _, fast := range []bool{true, false} {
				ok, err := hold(holdID(stock, fast), "ann", 1)
				if !errors.Is(err, shop.ErrGateStale) || ok {
					t.Fatalf("a hold over max_per_user (fast %v): %v, %v; want ErrGateStale", fast, ok, err)
				}
				check("ann", limit, stock-limit)
			}
			// Over the limit in one hold, for a shopper with no row yet: no row is left behind.
			ok, err := hold(holdID(stock, true), "bob", limit+1)
			if !errors.Is(err, shop.ErrGateStale) || ok {
				t.Fatalf("a hold of %d over max_per_user %d: %v, %v; want ErrGateStale", limit+1, limit, ok, err)
			}
			check("bob", 0, stock-limit)
			var rows int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM product_users WHERE user_id = 'bob'`).Scan(&rows); err != nil || rows != 0 {
				t.Fatalf("bob's refused hold left %d product_users rows (%v)", rows, err)
			}
		})
	}
}

// TestInsertHoldNeverDeadlocks: the reserve's write never waits on a slot while it holds
// another. Rounds of 200 goroutines call lu_take_hold itself (with store.InsertHold's second
// call on LU005, but none of its retries on a deadlock) for one unit each of a product whose 64
// units sit one per slot, so that many holds find the slots taken or short: either starting
// on the fast path as the reserve does, or all on the slow path (no slot: the insert trigger's
// lu_take_vunits tries a free slot, then waits for its own, then locks every slot in order).
// Before migration 0063 a slot that the fast path or one of lu_take_vunits' tries had locked
// and found short stayed locked, and the ordered locking then closed a cycle that Postgres
// broke after deadlock_timeout (40P01: 6 to 17 a round here, in either case). Every round must
// end with exactly 64 holds, no slot below zero, every refusal an LU001 and no deadlock.
func TestInsertHoldNeverDeadlocks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		slot func() any // the first call's slot; nil: the slow path from the start
	}{
		{"fast path first", func() any { return rand.IntN(64) }},
		{"slow path", func() any { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			holdRounds(t, tc.slot)
		})
	}
}

func holdRounds(t *testing.T, slot func() any) {
	const stock, callers, rounds = 64, 200, 4
	ctx := context.Background()
	pool, _ := testenv.Postgres(t)
	st := store.New(pool)
	now := testenv.Start
	p, err := st.UpsertProduct(ctx, "drop", shop.ProductInput{Name: "drop", Currency: "usd", Stock: stock, MaxPerUser: 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= rounds; round++ {
		var mu sync.Mutex
		codes := map[string]int{}
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ok bool
				id, user := shop.NewID("r_"), fmt.Sprintf("u%d-%d", round, i)
				take := func(slot any) error {
					return pool.QueryRow(ctx, `SELECT lu_take_hold($1, 'drop', 'default', $2, 1, $3, $4, $5, $4, 1, $6, NULL, NULL, NULL, NULL)`,
						id, user, now.Add(time.Hour), now, p.Gen, slot).Scan(&ok)
				}
				err := take(slot())
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code == "LU005" {
					err = take(nil) // as store.InsertHold does: the slow path, from fresh
				}
				code := "ok"
				switch {
				case errors.As(err, &pe):
					code = pe.Code
				case err != nil:
					code = err.Error()
				case !ok:
					code = "false"
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		var held, free, negative int64
		if err := pool.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM reservations WHERE product_id = 'drop' AND status = 'reserved'),
				(SELECT sum(free) FROM product_slots WHERE product_id = 'drop'),
				(SELECT count(*) FROM product_slots WHERE product_id = 'drop' AND free < 0)`).Scan(&held, &free, &negative); err != nil {
			t.Fatal(err)
		}
		if codes["40P01"] > 0 || codes["ok"] != stock || codes["LU001"] != callers-stock || held != stock || free != 0 || negative != 0 {
			t.Fatalf("round %d: outcomes %v (want ok %d, LU001 %d, no 40P01); holds %d, free %d, slots below zero %d",
				round, codes, stock, callers-stock, held, free, negative)
		}
		// Give every unit back (the trigger returns each to one slot) and spread them again.
		if _, err := pool.Exec(ctx, `UPDATE reservations SET status = 'released' WHERE product_id = 'drop' AND status = 'reserved'`); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `SELECT lu_vspread('drop', 'default', (SELECT sum(free) FROM product_slots WHERE product_id = 'drop')::bigint)`); err != nil {
			t.Fatal(err)
		}
	}
}
