package stock_test

import (
	"fmt"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

// release.lua with a deadline releases only a hold known by that deadline, except, with
// FromReserved, a hold marked checked out under another deadline (a checkout whose order
// Postgres can no longer record). A reserved hold under another deadline, or a checked-out
// one without FromReserved (a retake, an order's hold), is left alone.
func TestReleaseNamesTheDeadlineOrADoomedCheckout(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	d, pay := now.Add(10*time.Minute), now.Add(15*time.Minute)
	tests := []struct {
		name         string
		status       string
		gateDeadline time.Time
		named        time.Time
		fromReserved bool
		want         string
	}{
		{"same deadline", shop.StatusReserved, d, d, false, shop.GateReleased},
		{"same deadline from reserved", shop.StatusReserved, d, d, true, shop.GateReleased},
		{"reserved under another deadline", shop.StatusReserved, pay, d, true, shop.GateAbsent},
		{"checked out, caller not from reserved", shop.StatusCheckedOut, pay, d, false, shop.GateAbsent},
		{"checked out, Postgres ended it from reserved", shop.StatusCheckedOut, pay, d, true, shop.GateReleased},
		{"any deadline", shop.StatusCheckedOut, pay, time.Time{}, false, shop.GateReleased},
	}
	g := stock.New(testenv.Redis(t))
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("p%d", i)
			set, err := g.Rebuild(ctx, shop.GateState{ProductID: p, Available: 3, MaxPerUser: 5, Gen: 1, Holds: []shop.Reservation{
				{ID: "r", UserID: "u", Quantity: 2, Status: tc.status, ExpiresAt: tc.gateDeadline},
			}}, now)
			if err != nil || !set {
				t.Fatalf("rebuild: %v, %v", set, err)
			}
			rel := shop.GateRelease{ProductID: p, ID: "r", Deadline: tc.named, FromReserved: tc.fromReserved}
			res, err := g.Release(ctx, rel)
			if err != nil || res.Outcome != tc.want {
				t.Fatalf("release: %+v, %v; want %s", res, err, tc.want)
			}
			if tc.want == shop.GateReleased {
				if res.Quantity != 2 || res.Available != 5 {
					t.Fatalf("released %d, available %d; want 2 and 5", res.Quantity, res.Available)
				}
				if again, err := g.Release(ctx, rel); err != nil || again.Outcome != shop.GateAbsent {
					t.Fatalf("second release: %+v, %v; want absent (units back once)", again, err)
				}
			}
		})
	}
}
