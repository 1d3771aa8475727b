package stock_test

import (
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

// TestVersionBumpsWithEveryChangeOfAvailable walks every gate script and checks the live
// stock's rule: a script that changes a product's available units bumps its version in the
// same atomic step (so the pair read together is never stale), and one that does not change
// them leaves the version alone (so viewers get no empty messages). A gate rebuilt after it
// was dropped starts above every version it had.
func TestVersionBumpsWithEveryChangeOfAvailable(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	g := stock.New(rdb)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	k := stock.KeysFor("p1")
	read := func() (avail, ver int64) {
		a, _ := rdb.HGet(ctx, k.Gate, "avail").Int64()
		v, _ := rdb.Get(ctx, k.Version).Int64()
		return a, v
	}
	hold := func(id string, qty int64) shop.GateReserve {
		return shop.GateReserve{ProductID: "p1", ID: id, UserID: "u", Quantity: qty, Now: now, Deadline: now.Add(time.Minute)}
	}
	item := func(id string, qty int64) []shop.OrderItem {
		return []shop.OrderItem{{ReservationID: id, ProductID: "p1", Quantity: qty, HoldExpiresAt: now.Add(time.Minute)}}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name    string
		run     func()
		changes bool // available changes
	}{
		{"rebuild from nothing", func() {
			_, err := g.Rebuild(ctx, shop.GateState{ProductID: "p1", Available: 10, MaxPerUser: 100, Gen: 1}, now)
			must(err)
		}, true},
		{"reserve", func() { _, err := g.Reserve(ctx, hold("r1", 2)); must(err) }, true},
		{"reserve refused: out of stock", func() { _, err := g.Reserve(ctx, hold("r2", 100)); must(err) }, false},
		{"checkout", func() {
			_, _, err := g.Checkout(ctx, "u", []shop.Reservation{{ID: "r1", ProductID: "p1"}}, now, now.Add(time.Hour))
			must(err)
		}, false},
		{"uncheckout", func() { must(g.Uncheckout(ctx, item("r1", 2))) }, false},
		{"release", func() {
			_, err := g.Release(ctx, shop.GateRelease{ProductID: "p1", ID: "r1", UserID: "u", IdemKey: ""})
			must(err)
		}, true},
		{"release again (absent)", func() {
			_, err := g.Release(ctx, shop.GateRelease{ProductID: "p1", ID: "r1", UserID: "u", IdemKey: ""})
			must(err)
		}, false},
		{"retake after a late payment", func() { _, _, _, err := g.Retake(ctx, "u", item("r3", 4), now.Add(time.Hour)); must(err) }, true},
		{"retake of a hold still held", func() { _, _, _, err := g.Retake(ctx, "u", item("r3", 4), now.Add(time.Hour)); must(err) }, false},
		{"drop a fulfilled hold", func() { must(g.Drop(ctx, []shop.Reservation{{ID: "r3", ProductID: "p1"}}, time.Now())) }, false},
		{"rebuild over a gate (no-op)", func() {
			_, err := g.Rebuild(ctx, shop.GateState{ProductID: "p1", Available: 99, MaxPerUser: 100, Gen: 1}, now)
			must(err)
		}, false},
		{"invalidate then rebuild", func() {
			must(g.Invalidate(ctx, "p1", 2))
			_, err := g.Rebuild(ctx, shop.GateState{ProductID: "p1", Available: 20, MaxPerUser: 100, Gen: 2}, now)
			must(err)
		}, true},
	}
	a0, v0 := read()
	for _, s := range steps {
		s.run()
		a, v := read()
		switch {
		case a != a0 && !s.changes:
			t.Fatalf("%s: available %d -> %d, expected no change", s.name, a0, a)
		case s.changes && v <= v0:
			t.Fatalf("%s: available %d -> %d but version %d -> %d", s.name, a0, a, v0, v)
		case !s.changes && v != v0:
			t.Fatalf("%s: available unchanged but version %d -> %d", s.name, v0, v)
		}
		a0, v0 = a, v
	}
	// Redis lost everything: the new version starts above any the old one reached.
	before := v0
	rdb.FlushDB(ctx)
	if _, err := g.Rebuild(ctx, shop.GateState{ProductID: "p1", Available: 20, MaxPerUser: 100, Gen: 3}, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, v := read(); v <= before {
		t.Fatalf("version after Redis was lost: %d, not above %d", v, before)
	}
}
