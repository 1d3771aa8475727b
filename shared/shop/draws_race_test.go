package shop_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// drawState is a draw's entries and its free units as Postgres has them.
type drawState struct {
	free    map[string]int64
	entries []drawRow
}

type drawRow struct {
	user, state, reservation, variant, holdStatus string
	rank, quantity                                int64
	variants                                      []string
}

func readDraw(t testing.TB, e *testenv.Env, id string) drawState {
	t.Helper()
	ctx := context.Background()
	st := drawState{free: map[string]int64{}}
	rows, err := e.Pool.Query(ctx, `SELECT variant_id, sum(free) FROM product_slots WHERE product_id = $1 GROUP BY variant_id`, id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v string
		var n int64
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		st.free[v] = n
	}
	rows, err = e.Pool.Query(ctx, `SELECT r.user_id, r.state, coalesce(r.reservation_id, ''), coalesce(r.variant_id, ''), coalesce(h.status, ''),
		r.rank, e.quantity, e.variant_ids
		FROM draw_ranks r JOIN draw_entries e USING (product_id, user_id) LEFT JOIN reservations h ON h.id = r.reservation_id
		WHERE r.product_id = $1 ORDER BY r.rank`, id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r drawRow
		if err := rows.Scan(&r.user, &r.state, &r.reservation, &r.variant, &r.holdStatus, &r.rank, &r.quantity, &r.variants); err != nil {
			t.Fatal(err)
		}
		st.entries = append(st.entries, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return st
}

// checkDraw fails the test unless the draw is at rest and right: every won entry has exactly
// its own live hold (so no unit is offered twice: Postgres holds never pass stock, which
// CheckLedger checks with the gate's copy), every expired entry's hold ended, no waitlisted
// entry fits the free units (none is left unoffered), and every hold of the product is an
// entry's offer.
func checkDraw(t testing.TB, e *testenv.Env, id string, units int64) drawState {
	t.Helper()
	e.CheckLedger(t, id, units)
	e.CheckVariants(t, id) // per size in both stores, and nobody past max_per_user
	st := readDraw(t, e, id)
	users := map[string]bool{}
	for _, r := range st.entries {
		if users[r.user] {
			t.Errorf("%s has two entries", r.user)
		}
		users[r.user] = true
		switch r.state {
		case shop.EntryWon:
			if r.reservation != shop.OfferID(id, r.user) || (r.holdStatus != shop.StatusReserved && r.holdStatus != shop.StatusCheckedOut && r.holdStatus != shop.StatusFulfilled) {
				t.Errorf("won entry of rank %d: hold %s is %q", r.rank, r.reservation, r.holdStatus)
			}
		case shop.EntryExpired:
			if r.holdStatus != shop.StatusReleased && r.holdStatus != shop.StatusExpired && r.holdStatus != shop.StatusCancelled {
				t.Errorf("expired entry of rank %d: hold %s is %q", r.rank, r.reservation, r.holdStatus)
			}
		case shop.EntryWaitlisted:
			for _, v := range r.variants {
				if st.free[v] >= r.quantity {
					t.Errorf("waitlisted entry of rank %d (%d of %v) fits %s, which has %d free", r.rank, r.quantity, r.variants, v, st.free[v])
				}
			}
		}
	}
	var strays int
	if err := e.Pool.QueryRow(context.Background(), `SELECT count(*) FROM reservations h WHERE h.product_id = $1
		AND NOT EXISTS (SELECT 1 FROM draw_ranks r WHERE r.product_id = h.product_id AND r.reservation_id = h.id)`, id).Scan(&strays); err != nil {
		t.Fatal(err)
	}
	if strays != 0 {
		t.Errorf("%d holds of the draw belong to no entry", strays)
	}
	return st
}

// drawEntries enters n shoppers (user i wants us-1 then us-2, or the reverse for odd i) and
// moves the clock to the draw.
func drawEntries(t testing.TB, e *testenv.Env, id string, n int, opens, drawAt time.Time) []string {
	t.Helper()
	e.Clock.Advance(opens.Sub(e.Clock.Now()))
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("shopper-%03d", i)
		vs := []string{"us-1", "us-2"}
		if i%2 == 1 {
			vs = []string{"us-2", "us-1"}
		}
		entry(t, e, id, users[i], int64(1+i%2), vs...)
	}
	e.Clock.Advance(drawAt.Sub(e.Clock.Now()))
	return users
}

// TestDrawOverlappingSweeps: twenty sweeps at once at draw_at rank the draw once and offer each
// unit once; both stores agree.
func TestDrawOverlappingSweeps(t *testing.T) {
	t.Parallel()
	e, opens, _, drawAt := drawEnv(t, "overlap", 10)
	drawEntries(t, e, "overlap", 60, opens, drawAt)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.Shop.Sweep(context.Background()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("sweep: %v", err)
	}
	st := checkDraw(t, e, "overlap", 20)
	var won int64
	for _, r := range st.entries {
		if r.state == shop.EntryWon {
			won += r.quantity
		}
	}
	if won != 20 || st.free["us-1"] != 0 || st.free["us-2"] != 0 {
		t.Fatalf("%d units offered, free %v; want all 20 offered", won, st.free)
	}
}

// TestDrawSweepKilledBetweenOfferAndGate: the round that made the offers dies after Postgres
// recorded them and before the gate took them; the gate lacks them until the next sweep takes
// them (offer.lua by their ids: once), and nothing is offered twice.
func TestDrawSweepKilledBetweenOfferAndGate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, opens, _, drawAt := drawEnv(t, "killed", 3)
	drawEntries(t, e, "killed", 12, opens, drawAt)
	died := errors.New("killed")
	kills := 2
	e.Shop.Fault = func(step string) error {
		if step == "draw.before_gate" && kills > 0 {
			kills--
			return died
		}
		return nil
	}
	if _, err := e.Shop.Sweep(ctx); !errors.Is(err, died) {
		t.Fatalf("sweep = %v, want the injected death", err)
	}
	l := e.ReadLedger(t, "killed")
	if len(l.HoldsPG) == 0 || len(l.HoldsRedis) != 0 {
		t.Fatalf("after the death: %d holds in postgres, %d in the gate; want some, none", len(l.HoldsPG), len(l.HoldsRedis))
	}
	// A release of one offer now (the gate does not know it) backfills, and that round dies too.
	st := readDraw(t, e, "killed")
	var first drawRow
	for _, r := range st.entries {
		if r.state == shop.EntryWon {
			first = r
			break
		}
	}
	if err := e.Shop.Release(ctx, first.user, first.reservation); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(30 * time.Second)
	for range 2 {
		if _, err := e.Shop.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	checkDraw(t, e, "killed", 6)
}

// TestDrawReleasesRaceBackfill: hundreds of goroutines release won offers while others sweep,
// round after round, until the waitlist is spent: every unit is offered to one entry at a
// time, in rank order, and at rest nothing that fits waits.
func TestDrawReleasesRaceBackfill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, opens, _, drawAt := drawEnv(t, "race", 15)
	drawEntries(t, e, "race", 300, opens, drawAt)
	if _, err := e.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	rounds := 0
	for ; rounds < 40; rounds++ {
		st := readDraw(t, e, "race")
		var won []drawRow
		waiting := 0
		for _, r := range st.entries {
			switch r.state {
			case shop.EntryWon:
				won = append(won, r)
			case shop.EntryWaitlisted:
				waiting++
			}
		}
		if waiting == 0 {
			break
		}
		var wg sync.WaitGroup
		for i, r := range won {
			wg.Add(2)
			go func() {
				defer wg.Done()
				if err := e.Shop.Release(ctx, r.user, r.reservation); err != nil {
					t.Errorf("release: %v", err)
				}
			}()
			go func() { // the same release twice, and sweeps in between
				defer wg.Done()
				if i%5 == 0 {
					if _, err := e.Shop.Sweep(ctx); err != nil {
						t.Errorf("sweep: %v", err)
					}
					return
				}
				if err := e.Shop.Release(ctx, r.user, r.reservation); err != nil {
					t.Errorf("release again: %v", err)
				}
			}()
		}
		wg.Wait()
		checkDraw(t, e, "race", 30)
	}
	st := checkDraw(t, e, "race", 30)
	var won, expired int
	for _, r := range st.entries {
		switch r.state {
		case shop.EntryWon:
			won++
		case shop.EntryExpired:
			expired++
		case shop.EntryWaitlisted, shop.EntryLost:
			t.Errorf("entry of rank %d is still %s", r.rank, r.state)
		}
	}
	if won+expired != 300 || won == 0 {
		t.Fatalf("after %d rounds: %d won, %d expired of 300", rounds, won, expired)
	}
}
