package shop_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"lastunit/shared/shop"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// paidOrder reserves units of product for user, checks out and pays.
func paidOrder(t *testing.T, env *testenv.Env, user, product string, units int) shop.Order {
	t.Helper()
	for i := 0; i < units; i++ {
		reserveN(t, env, user, product)
	}
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: user})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Shop.HandlePaymentEvent(ctx, succeeded(o, "evt_"+o.ID)); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestSameJobTenTimesFulfilsOnce(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "ful", 10, 10)
	o := paidOrder(t, env, "alice", "ful", 3)
	hammer(5, func(i int) {
		if err := env.Shop.Fulfill(ctx, o.ID, 1); err != nil {
			t.Errorf("fulfill: %v", err)
		}
	})
	for i := 0; i < 5; i++ {
		if err := env.Shop.Fulfill(ctx, o.ID, 1); err != nil {
			t.Fatal(err)
		}
	}
	l := env.CheckLedger(t, "ful", 10)
	if l.Stock != 7 || l.Sold != 3 || l.Available != 7 || l.HeldPG != 0 || len(l.HoldsRedis) != 0 {
		t.Fatalf("after 10 deliveries: %+v; want stock 7, sold 3, available 7, nothing held", l)
	}
	if st := orderStatus(t, env, o.ID); st != shop.OrderFulfilled {
		t.Fatalf("order %s", st)
	}
	// A later success event for it changes nothing.
	if err := env.Shop.HandlePaymentEvent(ctx, succeeded(o, "evt_again")); err != nil {
		t.Fatal(err)
	}
	env.CheckLedger(t, "ful", 10)
}

func TestFulfilledHoldsLeftInTheGateAreDroppedBySweep(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "drop", 4, 4)
	o := paidOrder(t, env, "alice", "drop", 2)
	// Postgres fulfils, then the process dies before the gate forgets the holds.
	if _, err := env.Shop.Store.FulfillOrder(ctx, o.ID, env.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	l := env.ReadLedger(t, "drop")
	if len(l.HoldsRedis) != 2 || l.Available != 2 {
		t.Fatalf("setup: %+v", l)
	}
	env.Clock.Advance(16 * time.Minute)
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// The sold units must not come back as available.
	if l := env.CheckLedger(t, "drop", 4); l.Available != 2 || l.Sold != 2 || len(l.HoldsRedis) != 0 {
		t.Fatalf("after the sweep: %+v; want available 2, sold 2", l)
	}
}

func TestPostgresDownDuringFulfilmentIsRetried(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "pg", 3, 3)
	o := paidOrder(t, env, "alice", "pg", 1)
	dead, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	down := shop.NewService(store.New(dead), env.Shop.Gate)
	down.Log = env.Shop.Log
	if err := down.Fulfill(ctx, o.ID, 1); shop.ErrorCode(err) != shop.CodeUnavailable {
		t.Fatalf("fulfill with postgres down: %v, want unavailable (the job is retried)", err)
	}
	if st := orderStatus(t, env, o.ID); st != shop.OrderPaid {
		t.Fatalf("order %s", st)
	}
	env.CheckLedger(t, "pg", 3)
	if err := env.Shop.Fulfill(ctx, o.ID, 2); err != nil {
		t.Fatal(err)
	}
	if l := env.CheckLedger(t, "pg", 3); l.Sold != 1 {
		t.Fatalf("sold %d", l.Sold)
	}
}

// failThrice makes fulfilment fail with an injected error while on.
func failing(env *testenv.Env) *atomic.Bool {
	var on atomic.Bool
	env.Shop.Fault = func(step string) error {
		if step == "fulfill" && on.Load() {
			return errors.New("injected: warehouse is down")
		}
		return nil
	}
	return &on
}

func TestFailedJobCancelAndJanitor(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Shop.Dead = env.Queue
	env.Product(t, "fj", 6, 6)
	fail := failing(env)
	fail.Store(true)
	o1 := paidOrder(t, env, "alice", "fj", 2)
	for attempt := 1; attempt <= shop.MaxAttempts; attempt++ {
		if err := env.Shop.Fulfill(ctx, o1.ID, attempt); err == nil {
			t.Fatal("the injected fault did not fail the job")
		}
	}
	jobs, err := env.Shop.FailedJobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].OrderID != o1.ID || jobs[0].Attempts != 3 || jobs[0].LastError != "injected: warehouse is down" {
		t.Fatalf("failed jobs: %+v, %v", jobs, err)
	}
	// An admin cancels it: refunded, units back once; a second cancel changes nothing.
	c, err := env.Shop.CancelJob(ctx, o1.ID)
	if err != nil || c.Status != shop.OrderCancelled {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	if l := env.CheckLedger(t, "fj", 6); l.Available != 6 || l.Sold != 0 {
		t.Fatalf("after cancel: %+v", l)
	}
	hammer(3, func(int) {
		if c, err := env.Shop.CancelJob(ctx, o1.ID); err != nil || c.Status != shop.OrderCancelled {
			t.Errorf("cancel again: %+v, %v", c, err)
		}
	})
	if l := env.CheckLedger(t, "fj", 6); l.Available != 6 {
		t.Fatalf("a second cancel gave units back twice: available %d", l.Available)
	}
	if jobs, _ := env.Shop.FailedJobs(ctx); len(jobs) != 0 {
		t.Fatalf("still listed: %+v", jobs)
	}
	// A delivery after the cancel does nothing.
	fail.Store(false)
	if err := env.Shop.Fulfill(ctx, o1.ID, 4); err != nil {
		t.Fatal(err)
	}
	if st := orderStatus(t, env, o1.ID); st != shop.OrderCancelled {
		t.Fatalf("order %s", st)
	}

	// The janitor cancels only failed jobs older than FAILED_JOB_MAX_AGE.
	fail.Store(true)
	old := paidOrder(t, env, "bob", "fj", 1)
	_ = env.Shop.Fulfill(ctx, old.ID, 3) // fails: fulfillment faults are on
	env.Clock.Advance(20 * time.Hour)
	young := paidOrder(t, env, "carol", "fj", 1)
	_ = env.Shop.Fulfill(ctx, young.ID, 3) // fails: fulfillment faults are on
	env.Clock.Advance(5 * time.Hour)
	var runs []shop.JanitorReport
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	hammer(2, func(int) {
		rep, err := env.Shop.Janitor(ctx)
		if err != nil {
			t.Errorf("janitor: %v", err)
		}
		<-mu
		runs = append(runs, rep)
		mu <- struct{}{}
	})
	cancelled := 0
	for _, r := range runs {
		cancelled += len(r.Cancelled)
	}
	if cancelled != 1 {
		t.Fatalf("janitor runs %+v: want exactly the old job cancelled once", runs)
	}
	if st := orderStatus(t, env, old.ID); st != shop.OrderCancelled {
		t.Fatalf("old job %s", st)
	}
	if st := orderStatus(t, env, young.ID); st != shop.OrderPaid {
		t.Fatalf("young job %s", st)
	}
	if l := env.CheckLedger(t, "fj", 6); l.Available != 5 || l.HeldPG != 1 {
		t.Fatalf("after the janitor: %+v", l)
	}
	// A fulfilled order cannot be cancelled; a cancelled one cannot be retried.
	fail.Store(false)
	if err := env.Shop.Fulfill(ctx, young.ID, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Shop.CancelJob(ctx, young.ID); code(err) != shop.CodeInvalidState {
		t.Fatalf("cancel fulfilled: %v", err)
	}
	if _, err := env.Shop.RetryJob(ctx, o1.ID); code(err) != shop.CodeInvalidState {
		t.Fatalf("retry cancelled: %v", err)
	}
	if r, err := env.Shop.RetryJob(ctx, young.ID); err != nil || r.Queued {
		t.Fatalf("retry fulfilled: %+v, %v", r, err)
	}
	env.CheckLedger(t, "fj", 6)
}

// A job dead-lettered while Postgres was down never recorded its failure: the sweep lists
// the paid order as a failed job once it waited longer than the queue's retries take.
func TestStalePaidOrderBecomesAFailedJob(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "stale", 2, 2)
	o := paidOrder(t, env, "alice", "stale", 1)
	env.Clock.Advance(14 * time.Minute)
	if rep, err := env.Shop.Sweep(ctx); err != nil || rep.StalePaid != 0 {
		t.Fatalf("early sweep: %+v, %v", rep, err)
	}
	env.Clock.Advance(2 * time.Minute)
	if rep, err := env.Shop.Sweep(ctx); err != nil || rep.StalePaid != 1 {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	jobs, err := env.Shop.FailedJobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].OrderID != o.ID {
		t.Fatalf("failed jobs %+v, %v", jobs, err)
	}
	// Fulfilling it (a retry) clears the mark.
	if err := env.Shop.Fulfill(ctx, o.ID, 1); err != nil {
		t.Fatal(err)
	}
	if jobs, _ := env.Shop.FailedJobs(ctx); len(jobs) != 0 {
		t.Fatalf("still listed after fulfilment: %+v", jobs)
	}
}

// A failed job retried long after it failed waits for fulfillment afresh: the next sweep
// must not mark it failed again until it really waits FulfillDeadline past the retry.
func TestRetriedFailedJobIsNotMarkedFailedAgainAtOnce(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Shop.Dead = env.Queue
	env.Product(t, "rt", 4, 4)
	fail := failing(env)
	fail.Store(true)
	o := paidOrder(t, env, "alice", "rt", 1)
	for attempt := 1; attempt <= shop.MaxAttempts; attempt++ {
		_ = env.Shop.Fulfill(ctx, o.ID, attempt) // fails: fulfillment faults are on
	}
	if jobs, err := env.Shop.FailedJobs(ctx); err != nil || len(jobs) != 1 {
		t.Fatalf("failed jobs %+v, %v", jobs, err)
	}
	env.Clock.Advance(3 * time.Hour) // the admin retries it hours later
	if _, err := env.Shop.RetryJob(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	if jobs, _ := env.Shop.FailedJobs(ctx); len(jobs) != 0 {
		t.Fatalf("still listed right after the retry: %+v", jobs)
	}
	if rep, err := env.Shop.Sweep(ctx); err != nil || rep.StalePaid != 0 {
		t.Fatalf("sweep right after the retry: %+v, %v (marked failed again at once)", rep, err)
	}
	env.Clock.Advance(env.Shop.FulfillDeadline - time.Minute)
	if rep, err := env.Shop.Sweep(ctx); err != nil || rep.StalePaid != 0 {
		t.Fatalf("sweep within the deadline after the retry: %+v, %v", rep, err)
	}
	env.Clock.Advance(2 * time.Minute)
	if rep, err := env.Shop.Sweep(ctx); err != nil || rep.StalePaid != 1 {
		t.Fatalf("sweep past the deadline after the retry: %+v, %v; want it failed again", rep, err)
	}
}
