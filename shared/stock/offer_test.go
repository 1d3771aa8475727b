package stock_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

// TestOffer: a draw's offer is a hold like any other (the variant's stock, max_per_user over
// all variants, the hold released by release.lua), made after the entry period closed (the
// window does not apply to it), and made twice it takes its units once.
func TestOffer(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	g := stock.New(rdb)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	opens, closes := now.Add(-2*time.Hour), now.Add(-time.Hour)
	deadline := now.Add(time.Hour)
	offer := func(user, variant string, qty int64) (shop.GateResult, error) {
		return g.Offer(ctx, shop.GateOffer{ProductID: "shoe", VariantID: variant, ID: shop.OfferID("shoe", user), UserID: user, Quantity: qty, Deadline: deadline})
	}
	if r, err := offer("a", "us-9", 1); err != nil || r.Outcome != shop.GateMissing {
		t.Fatalf("offer without a gate = %+v, %v", r, err)
	}
	set, err := g.Rebuild(ctx, shop.GateState{ProductID: "shoe", Available: 3, MaxPerUser: 1, Gen: 4, OpensAt: &opens, ClosesAt: &closes,
		Variants: []shop.GateVariant{{ID: "us-9", Available: 1}, {ID: "us-10", Available: 2}}}, now)
	if err != nil || !set {
		t.Fatalf("rebuild: %v, %v", set, err)
	}
	if r, err := g.Reserve(ctx, shop.GateReserve{ProductID: "shoe", VariantID: "us-9", ID: shop.NewID("r_"), UserID: "a", Quantity: 1, Now: now, Deadline: deadline}); err != nil || r.Outcome != shop.GateNotOpen {
		t.Fatalf("a reserve after the close = %+v, %v; want not_open", r, err)
	}
	for _, c := range []struct {
		name, user, variant string
		qty                 int64
		outcome             string
		available           int64
	}{
		{"after the close, first of us-9", "a", "us-9", 1, shop.GateOK, 2},
		{"the same offer again", "a", "us-9", 1, shop.GateReplay, 0},
		{"us-9 is gone", "b", "us-9", 1, shop.GateOutOfStock, 0},
		{"an unknown size", "b", "us-14", 1, shop.GateNoVariant, 0},
		{"two pairs over max_per_user", "b", "us-10", 2, shop.GateLimit, 0},
		{"us-10", "b", "us-10", 1, shop.GateOK, 1},
	} {
		r, err := offer(c.user, c.variant, c.qty)
		if err != nil || r.Outcome != c.outcome || (c.outcome != shop.GateReplay && c.outcome != shop.GateNoVariant && c.outcome != shop.GateLimit && r.Available != c.available) {
			t.Fatalf("%s: %+v, %v; want %s with %d available", c.name, r, err, c.outcome, c.available)
		}
		if c.outcome == shop.GateOK && r.Gen != 4 {
			t.Fatalf("%s: gen %d, want 4", c.name, r.Gen)
		}
	}
	// The offer ends like any hold: released, its unit is back once.
	for range 2 {
		if _, err := g.Release(ctx, shop.GateRelease{ProductID: "shoe", ID: shop.OfferID("shoe", "a"), Deadline: deadline, FromReserved: true}); err != nil {
			t.Fatal(err)
		}
	}
	av, err := g.Available(ctx, []string{"shoe"})
	if err != nil || av["shoe"].Total != 2 || av["shoe"].Variants["us-9"] != 1 || av["shoe"].Variants["us-10"] != 1 {
		t.Fatalf("after releasing a's offer twice: %+v, %v", av["shoe"], err)
	}
}

// TestOfferConcurrently: hundreds of offers at once, every entrant's offer sent twice (an
// overlapping sweep): the units go once each, nobody gets two holds, the gate's counts agree.
func TestOfferConcurrently(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	g := stock.New(rdb)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	if set, err := g.Rebuild(ctx, shop.GateState{ProductID: "drop", Available: 50, MaxPerUser: 1, Gen: 1, Variants: []shop.GateVariant{{ID: "default", Available: 50}}}, now); err != nil || !set {
		t.Fatalf("rebuild: %v, %v", set, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range 200 {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user := fmt.Sprintf("s%d", i)
				r, err := g.Offer(ctx, shop.GateOffer{ProductID: "drop", VariantID: "default", ID: shop.OfferID("drop", user), UserID: user, Quantity: 1, Deadline: now.Add(time.Hour)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				outcomes[r.Outcome]++
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	k := stock.KeysFor("drop")
	holds, _ := rdb.HLen(ctx, k.Holds).Result()
	avail, _ := rdb.HGet(ctx, k.Gate, "avail").Int64()
	if outcomes[shop.GateOK] != 50 || holds != 50 || avail != 0 {
		t.Fatalf("outcomes %v, %d holds, %d available; want 50 offers, 50 holds, 0 available", outcomes, holds, avail)
	}
	users, _ := rdb.HGetAll(ctx, k.Users).Result()
	for u, n := range users {
		if n != "1" {
			t.Fatalf("user %s holds %s units", u, n)
		}
	}
}
