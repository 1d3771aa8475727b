package shop_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// A checkout that dies between checkout.lua and its order leaves the holds reserved in
// Postgres (deadline D) and marked checked out in the gate (payment deadline). The first
// sweep after D gives the units back, exactly once, not the sweep after the payment deadline.
func TestCrashBetweenCheckoutAndOrderFreesUnitsAtTheHoldDeadline(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "co", 3, 3)
	reserveN(t, env, "alice", "co", "co")
	env.Shop.Fault = func(step string) error {
		if step == "checkout.before_order" {
			return errDied
		}
		return nil
	}
	if _, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice"}); err != errDied {
		t.Fatalf("checkout: %v", err)
	}
	env.Shop.Fault = nil
	if l := env.ReadLedger(t, "co"); l.Available != 1 || l.HeldPG != 2 {
		t.Fatalf("after the crash: %+v", l)
	}
	env.Clock.Advance(env.Shop.HoldTTL + time.Millisecond) // past D, well before the payment deadline
	var freed, expired atomic.Int64
	hammer(3, func(int) {
		rep, err := env.Shop.Sweep(ctx)
		if err != nil {
			t.Errorf("sweep: %v", err)
		}
		freed.Add(int64(rep.UnitsFreed))
		expired.Add(int64(rep.Expired))
	})
	if freed.Load() != 2 || expired.Load() != 2 {
		t.Fatalf("sweeps after the hold deadline freed %d units of %d holds, want 2 and 2", freed.Load(), expired.Load())
	}
	if l := env.CheckLedger(t, "co", 3); l.Available != 3 {
		t.Fatalf("available %d after the sweep, want 3", l.Available)
	}
	env.Clock.Advance(env.Shop.PaymentWindow) // past the gate's checkout deadline too
	rep, err := env.Shop.Sweep(ctx)
	if err != nil || rep.UnitsFreed != 0 {
		t.Fatalf("a later sweep: %+v, %v; want nothing freed twice", rep, err)
	}
	if l := env.CheckLedger(t, "co", 3); l.Available != 3 {
		t.Fatalf("available %d, want 3", l.Available)
	}
}

// A DELETE that lands between checkout.lua and the order gives the units back at once; the
// checkout then finds the hold gone and answers reservation_expired.
func TestReleaseBetweenCheckoutAndOrderReturnsUnitsAtOnce(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "rc", 3, 3)
	ids := reserveN(t, env, "alice", "rc")
	var released error
	env.Shop.Fault = func(step string) error {
		if step == "checkout.before_order" {
			released = env.Shop.Release(ctx, "alice", ids[0])
		}
		return nil
	}
	_, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", ReservationIDs: ids})
	env.Shop.Fault = nil
	if released != nil {
		t.Fatalf("release during the checkout: %v", released)
	}
	if code(err) != shop.CodeReservationExpired {
		t.Fatalf("checkout of a hold released meanwhile: %v, want reservation_expired", err)
	}
	if l := env.CheckLedger(t, "rc", 3); l.Available != 3 {
		t.Fatalf("available %d right after the release, want 3 (at once, not at a deadline)", l.Available)
	}
	env.Clock.Advance(env.Shop.HoldTTL + env.Shop.PaymentWindow)
	if rep, err := env.Shop.Sweep(ctx); err != nil || rep.UnitsFreed != 0 {
		t.Fatalf("later sweep: %+v, %v; want nothing freed twice", rep, err)
	}
	env.CheckLedger(t, "rc", 3)
}

// DELETE and checkout of the same hold, raced many times: either the checkout wins (order,
// units held, DELETE is invalid_state) or the DELETE does (units back at once, checkout is
// reservation_expired), never both and never neither. Checked at rest without any sweep.
func TestReleaseRacingCheckoutNeverBothNeverNeither(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	const n = 100
	env.Product(t, "race", n, 1)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = reserveN(t, env, fmt.Sprintf("u%d", i), "race")[0]
	}
	var checkedOut, releasedN atomic.Int64
	hammer(2*n, func(i int) {
		user, id := fmt.Sprintf("u%d", i/2), ids[i/2]
		if i%2 == 0 {
			_, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: user, ReservationIDs: []string{id}})
			switch {
			case err == nil:
				checkedOut.Add(1)
			case code(err) != shop.CodeReservationExpired:
				t.Errorf("checkout %s: %v", id, err)
			}
			return
		}
		err := env.Shop.Release(ctx, user, id)
		switch {
		case err == nil:
			releasedN.Add(1)
		case code(err) != shop.CodeInvalidState:
			t.Errorf("release %s: %v", id, err)
		}
	})
	states := holdStates(t, env, ids)
	var co, rel int64
	for _, id := range ids {
		switch states[id] {
		case shop.StatusCheckedOut:
			co++
		case shop.StatusReleased:
			rel++
		default:
			t.Errorf("hold %s is %s", id, states[id])
		}
	}
	if co != checkedOut.Load() || rel != releasedN.Load() || co+rel != n {
		t.Fatalf("%d checkouts and %d releases succeeded; postgres has %d checked out and %d released of %d",
			checkedOut.Load(), releasedN.Load(), co, rel, n)
	}
	l := env.CheckLedger(t, "race", n)
	if l.Available != rel || l.HeldPG != co {
		t.Fatalf("available %d, held %d; want %d back at once and %d held", l.Available, l.HeldPG, rel, co)
	}
	t.Logf("%d checkouts won, %d releases won", co, rel)
}
