package shop_test

import (
	"fmt"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// A late payment whose retake the per-shopper limit refuses in Postgres is refunded, exactly
// like one stock cannot cover: never retried as a stale gate (which failed every delivery and
// left the charge stranded). The shopper is at the limit because they reserved again after
// their order lapsed, or because an admin lowered the limit.
func TestLatePaymentAtTheLimitIsRefunded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		max      int64
		adminMax int64 // 0: unchanged
	}{
		{name: "reserved up to the limit again", max: 1},
		{name: "admin lowered the limit", max: 2, adminMax: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := testenv.NewEnv(t).WithPayments(t)
			tap := env.WithStripeTap(t)
			env.Product(t, "lim", 5, tc.max)
			o := lapsedOrder(t, env, "alice", "lim")
			again := reserveN(t, env, "alice", "lim")
			if tc.adminMax > 0 {
				if _, err := env.Shop.UpsertProduct(ctx, "lim", shop.ProductInput{Name: "Product lim", PriceCents: 1500, Currency: "usd", Stock: 5, MaxPerUser: tc.adminMax}); err != nil {
					t.Fatal(err)
				}
			}
			tap.Succeed(t, o.ID)
			ev := succeeded(o, "evt_late_limit")
			for i := range 3 { // Stripe delivers again whatever we answer
				if err := env.Shop.HandlePaymentEvent(ctx, ev); err != nil {
					t.Fatalf("delivery %d: %v (Stripe would retry for days)", i+1, err)
				}
				if _, err := env.Shop.Sweep(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if st := orderStatus(t, env, o.ID); st != shop.OrderRefunded {
				t.Fatalf("late payment at the limit: order is %s, want refunded", st)
			}
			if n := tap.Refunds(*o.PaymentIntentID); n != 1 {
				t.Fatalf("%d refunds of the late payment, want 1", n)
			}
			if st := holdStates(t, env, again); st[again[0]] != shop.StatusReserved {
				t.Fatalf("the shopper's new hold is %s, want it untouched", st[again[0]])
			}
			l := env.CheckLedger(t, "lim", 5)
			if l.HeldPG != 1 || l.Available != 4 || l.UsersRedis["alice"] != 1 {
				t.Fatalf("after the refund: %+v; want alice's one new hold and 4 available", l)
			}
		})
	}
}

// The reconciliation settles what the webhooks never did: a payment Stripe has as succeeded
// for an order Postgres has expired is applied (units again, or a refund), a refund whose call
// failed after Stripe stopped retrying is made, and each order is asked about until Stripe has
// nothing more to say, at a bounded number of calls per sweep.
func TestReconciliationSettlesEveryCharge(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	tap := env.WithStripeTap(t)
	env.Shop.ReconcileBatch = 4
	env.Shop.ReconcileEvery = time.Minute // well inside the holds' 10 minutes
	env.Product(t, "rec", 20, 20)
	env.Product(t, "rec-last", 1, 1)
	env.Product(t, "rec-lim", 5, 1)

	tap.KeepIntentsOpen(true) // these payments succeed after the deadline's cancel
	// Paid, but no webhook ever arrived: units still there, so it takes them again.
	paid := lapsedOrder(t, env, "alice", "rec")
	tap.Succeed(t, paid.ID)
	// Paid, no webhook, and its unit is gone: refunded.
	short := lapsedOrder(t, env, "bob", "rec-last")
	// Paid and delivered, the retake refused by the limit, and the refund call failed (both
	// of stripe-go's tries) on every delivery until Stripe gave up.
	limited := lapsedOrder(t, env, "dave", "rec-lim")
	reserveN(t, env, "carol", "rec-last") // the last unit
	reserveN(t, env, "dave", "rec-lim")   // dave at his limit again
	tap.Succeed(t, short.ID)
	tap.Succeed(t, limited.ID)
	tap.FailRefunds(2)
	if err := env.Shop.HandlePaymentEvent(ctx, succeeded(limited, "evt_lim")); err == nil {
		t.Fatal("the delivery answered 2xx with the refund failed")
	}
	tap.KeepIntentsOpen(false)

	for range 3 {
		env.Clock.Advance(env.Shop.ReconcileEvery + time.Second)
		if _, err := env.Shop.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		o       shop.Order
		status  string
		refunds int
	}{
		{paid, shop.OrderPaid, 0},
		{short, shop.OrderRefunded, 1},
		{limited, shop.OrderRefunded, 1},
	} {
		if st := orderStatus(t, env, tc.o.ID); st != tc.status {
			t.Errorf("order %s is %s, want %s", tc.o.ID, st, tc.status)
		}
		if n := tap.Refunds(*tc.o.PaymentIntentID); n != tc.refunds {
			t.Errorf("order %s: %d refunds, want %d", tc.o.ID, n, tc.refunds)
		}
	}
	if n := queued(t, env.Queue); n != 1 {
		t.Errorf("%d fulfill jobs, want 1 (the order paid without a webhook)", n)
	}
	env.CheckLedger(t, "rec", 20)
	env.CheckLedger(t, "rec-last", 1)
	env.CheckLedger(t, "rec-lim", 5)

	// Ten orders whose intents Stripe still has open: each sweep asks about at most a batch,
	// least recently asked first, and an order at most once per ReconcileEvery.
	tap.KeepIntentsOpen(true)
	for i := range 10 {
		lapsedOrder(t, env, fmt.Sprintf("u%d", i), "rec")
	}
	env.Clock.Advance(env.Shop.ReconcileEvery + time.Second)
	var got []int
	for range 4 {
		reads := tap.Calls("GET /v1/payment_intents")
		if _, err := env.Shop.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		got = append(got, tap.Calls("GET /v1/payment_intents")-reads)
	}
	if fmt.Sprint(got) != "[4 4 2 0]" {
		t.Errorf("payment intents read by four sweeps: %v, want [4 4 2 0] (a batch of 4, each order once)", got)
	}
}

// An order Stripe still has unpaid (processing, or waiting for the shopper) is asked about
// until the window in which Stripe delivers webhooks has passed, then no more.
func TestReconciliationStopsAfterTheWindow(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	tap := env.WithStripeTap(t)
	env.Product(t, "win", 3, 3)
	tap.KeepIntentsOpen(true)           // the intent stays requires_payment_method after the deadline
	lapsedOrder(t, env, "alice", "win") // its sweep asked once
	asked := func() int {
		t.Helper()
		reads := tap.Calls("GET /v1/payment_intents")
		if _, err := env.Shop.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		return tap.Calls("GET /v1/payment_intents") - reads
	}
	if n := asked(); n != 0 {
		t.Fatalf("a sweep within ReconcileEvery read %d intents, want 0", n)
	}
	env.Clock.Advance(env.Shop.ReconcileWindow + time.Minute)
	if n := asked(); n != 1 {
		t.Fatalf("the sweep past the window read %d intents, want 1 (the last look)", n)
	}
	env.Clock.Advance(env.Shop.ReconcileEvery + time.Second)
	if n := asked(); n != 0 {
		t.Fatalf("after the window the sweep still reads (%d)", n)
	}
}

// A late payment after a failover to a copy of the gate from before its last rebuild (an
// older generation than Postgres's) takes its units again at the first delivery: the old gate
// is dropped and rebuilt, instead of being taken from again on every try (the payment then
// failed until a sweep happened to rebuild the gate).
func TestLatePaymentAfterAFailoverToAnOlderGeneration(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	tap := env.WithStripeTap(t)
	env.Product(t, "gen", 3, 3)
	o := lapsedOrder(t, env, "alice", "gen")
	older := testenv.DumpProduct(t, env.Redis, "gen")
	if _, err := env.Shop.Restock(ctx, "gen", 1); err != nil { // a new generation, the gate rebuilt
		t.Fatal(err)
	}
	testenv.RestoreProduct(t, env.Redis, "gen", older)
	tap.Succeed(t, o.ID)
	if err := env.Shop.HandlePaymentEvent(ctx, succeeded(o, "evt_gen")); err != nil {
		t.Fatalf("late payment after a failover to an older generation: %v", err)
	}
	if st := orderStatus(t, env, o.ID); st != shop.OrderPaid {
		t.Fatalf("order is %s, want paid", st)
	}
	if l := env.CheckLedger(t, "gen", 4); l.HeldPG != 1 || l.Available != 3 {
		t.Fatalf("after the retake: %+v", l)
	}
}
