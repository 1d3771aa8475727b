package shop_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// refunds is Stripe (stripe-mock) that counts refunds per order, and loses the answer of the
// first lose refunds after Stripe made them.
type refunds struct {
	shop.Payments
	mu    sync.Mutex
	calls map[string]int
	lose  atomic.Int64
}

func (r *refunds) Refund(ctx context.Context, orderID, paymentIntentID string) error {
	if err := r.Payments.Refund(ctx, orderID, paymentIntentID); err != nil {
		return err
	}
	r.mu.Lock()
	r.calls[orderID]++
	r.mu.Unlock()
	if r.lose.Add(-1) >= 0 {
		return errors.New("injected: the refund went through, its answer was lost")
	}
	return nil
}

func (r *refunds) count(orderID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[orderID]
}

func recordRefunds(env *testenv.Env) *refunds {
	r := &refunds{Payments: env.Shop.Pay, calls: map[string]int{}}
	env.Shop.Pay = r
	return r
}

// failedJob makes a paid order of units of product whose fulfillment failed 3 times.
func failedJob(t *testing.T, env *testenv.Env, fail *atomic.Bool, user, product string, units int) shop.Order {
	t.Helper()
	o := paidOrder(t, env, user, product, units)
	fail.Store(true)
	for attempt := 1; attempt <= shop.MaxAttempts; attempt++ {
		if err := env.Shop.Fulfill(ctx, o.ID, attempt); err == nil {
			t.Fatal("the injected fault did not fail the job")
		}
	}
	fail.Store(false)
	return o
}

// The refund went through but its answer was lost: the order must never be fulfilled after
// (the money is back with the shopper), and the sweep finishes the cancel.
func TestRefundAnswerLostNeverFulfilsARefundedOrder(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Shop.Dead = env.Queue
	env.Product(t, "rl", 4, 4)
	fail := failing(env)
	o := failedJob(t, env, fail, "alice", "rl", 2)
	rf := recordRefunds(env)
	rf.lose.Store(1)
	if _, err := env.Shop.CancelJob(ctx, o.ID); code(err) != shop.CodePaymentProviderError {
		t.Fatalf("cancel with the refund's answer lost: %v, want payment_provider_error", err)
	}
	if rf.count(o.ID) != 1 {
		t.Fatalf("%d refunds", rf.count(o.ID))
	}
	// A redelivered job, or an admin's retry, must not fulfil the refunded order.
	if _, err := env.Shop.RetryJob(ctx, o.ID); code(err) != shop.CodeInvalidState {
		t.Fatalf("retry of an order being refunded: %v, want invalid_state", err)
	}
	if err := env.Shop.Fulfill(ctx, o.ID, 4); err != nil {
		t.Fatal(err)
	}
	if st := orderStatus(t, env, o.ID); st == shop.OrderFulfilled {
		t.Fatal("a refunded order was fulfilled")
	}
	rep, err := env.Shop.Sweep(ctx)
	if err != nil || rep.CancelsFinished != 1 {
		t.Fatalf("sweep: %+v, %v; want the cancel finished", rep, err)
	}
	if st := orderStatus(t, env, o.ID); st != shop.OrderCancelled {
		t.Fatalf("after the sweep the order is %s", st)
	}
	if l := env.CheckLedger(t, "rl", 4); l.Available != 4 || l.Sold != 0 {
		t.Fatalf("after the sweep: %+v", l)
	}
	if c, err := env.Shop.CancelJob(ctx, o.ID); err != nil || c.Status != shop.OrderCancelled {
		t.Fatalf("cancel again: %+v, %v", c, err)
	}
	if rep, err := env.Shop.Sweep(ctx); err != nil || rep.CancelsFinished != 0 || rep.UnitsFreed != 0 {
		t.Fatalf("a second sweep: %+v, %v", rep, err)
	}
	env.CheckLedger(t, "rl", 4)
}

// A cancel (the admin's or the janitor's) dies between any two of its steps: the order is
// never fulfilled after, and the sweep refunds and cancels it, units back exactly once.
func TestCancelDiesBetweenStepsSweepFinishes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		step    string
		janitor bool
	}{
		{"cancel.after_request", false},
		{"cancel.after_refund", false},
		{"cancel.after_request", true},
		{"cancel.after_refund", true},
	} {
		t.Run(fmt.Sprintf("%s/janitor=%v", tc.step, tc.janitor), func(t *testing.T) {
			t.Parallel()
			env := testenv.NewEnv(t).WithPayments(t)
			env.Shop.Dead = env.Queue
			env.Product(t, "cd", 5, 5)
			fail := failing(env)
			o := failedJob(t, env, fail, "alice", "cd", 2)
			rf := recordRefunds(env)
			var died atomic.Bool
			env.Shop.Fault = func(step string) error {
				if step == tc.step && died.CompareAndSwap(false, true) {
					return errDied
				}
				return nil
			}
			if tc.janitor {
				env.Clock.Advance(env.Shop.FailedJobMaxAge + time.Second)
				rep, err := env.Shop.Janitor(ctx)
				if err != nil || len(rep.Failed) != 1 {
					t.Fatalf("janitor: %+v, %v; want the cancel failed", rep, err)
				}
			} else if _, err := env.Shop.CancelJob(ctx, o.ID); err != errDied {
				t.Fatalf("cancel: %v, want the injected death", err)
			}
			if st := orderStatus(t, env, o.ID); st != shop.OrderPaid {
				t.Fatalf("after the death the order is %s", st)
			}
			wantRefunds := map[string]int{"cancel.after_request": 0, "cancel.after_refund": 1}[tc.step]
			if rf.count(o.ID) != wantRefunds {
				t.Fatalf("%d refunds before the sweep, want %d", rf.count(o.ID), wantRefunds)
			}
			if err := env.Shop.Fulfill(ctx, o.ID, 4); err != nil { // the job redriven meanwhile
				t.Fatal(err)
			}
			if l := env.CheckLedger(t, "cd", 5); l.Sold != 0 || l.HeldPG != 2 {
				t.Fatalf("an order being refunded was fulfilled: %+v", l)
			}
			var finished atomic.Int64
			hammer(3, func(int) {
				rep, err := env.Shop.Sweep(ctx)
				if err != nil {
					t.Errorf("sweep: %v", err)
				}
				finished.Add(int64(rep.CancelsFinished))
			})
			if finished.Load() < 1 || rf.count(o.ID) < 1 {
				t.Fatalf("sweeps finished %d cancels with %d refunds", finished.Load(), rf.count(o.ID))
			}
			if st := orderStatus(t, env, o.ID); st != shop.OrderCancelled {
				t.Fatalf("after the sweep the order is %s", st)
			}
			if l := env.CheckLedger(t, "cd", 5); l.Available != 5 || l.Sold != 0 {
				t.Fatalf("after the sweep: %+v; want the 2 units back once", l)
			}
		})
	}
}

// Fulfillment and cancel of the same failed job, raced: each order ends fulfilled (never
// refunded) or cancelled and refunded (never fulfilled).
func TestFulfilmentRacingCancelNeverFulfilsARefundedOrder(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Shop.Dead = env.Queue
	const n = 20
	env.Product(t, "fr", n, 1)
	fail := failing(env)
	orders := make([]shop.Order, n)
	for i := range orders {
		orders[i] = failedJob(t, env, fail, fmt.Sprintf("u%d", i), "fr", 1)
	}
	rf := recordRefunds(env)
	cancelled := make([]atomic.Bool, n)
	hammer(2*n, func(i int) {
		o := orders[i/2]
		if i%2 == 0 {
			if err := env.Shop.Fulfill(ctx, o.ID, 4); err != nil {
				t.Errorf("fulfill: %v", err)
			}
			return
		}
		c, err := env.Shop.CancelJob(ctx, o.ID)
		switch {
		case err == nil && c.Status == shop.OrderCancelled:
			cancelled[i/2].Store(true)
		case code(err) != shop.CodeInvalidState:
			t.Errorf("cancel: %+v, %v", c, err)
		}
	})
	var sold int64
	for i, o := range orders {
		st, refunded := orderStatus(t, env, o.ID), rf.count(o.ID) > 0
		switch {
		case st == shop.OrderFulfilled && !refunded && !cancelled[i].Load():
			sold++
		case st == shop.OrderCancelled && refunded && cancelled[i].Load():
		default:
			t.Errorf("order %s is %s, refunded %v, cancel answered cancelled %v", o.ID, st, refunded, cancelled[i].Load())
		}
	}
	if l := env.CheckLedger(t, "fr", n); l.Sold != sold || l.HeldPG != 0 || l.Available != n-sold {
		t.Fatalf("ledger %+v, want %d sold and the rest available", l, sold)
	}
	t.Logf("%d fulfilled, %d cancelled", sold, n-sold)
}
