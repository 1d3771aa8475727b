package shop_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"lastunit/shared/shop"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

var ctx = context.Background()

func code(err error) shop.Code {
	if err == nil {
		return ""
	}
	return shop.ErrorCode(err)
}

// hammer runs n goroutines released together and waits for them.
func hammer(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

func TestMixedQuantitiesNeverExceedStock(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "mixed", 100, 1000)
	var granted, refused atomic.Int64
	hammer(300, func(i int) {
		q := int64(1 + rand.IntN(7))
		_, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: fmt.Sprintf("u%d", i), ProductID: "mixed", Quantity: q})
		switch code(err) {
		case "":
			granted.Add(q)
		case shop.CodeOutOfStock:
			refused.Add(1)
		default:
			t.Errorf("reserve %d: %v", q, err)
		}
	})
	if granted.Load() > 100 {
		t.Fatalf("granted %d units of 100", granted.Load())
	}
	if refused.Load() == 0 {
		t.Fatalf("300 shoppers asking up to 7 each were never refused: the test did not contend")
	}
	l := env.CheckLedger(t, "mixed", 100)
	if l.HeldPG != granted.Load() {
		t.Errorf("postgres holds %d units, shoppers were granted %d", l.HeldPG, granted.Load())
	}
	// With 300 asks of up to 7 units, the gate must have been driven close to empty.
	if l.Available > 6 {
		t.Errorf("available %d: units were refused while some were left", l.Available)
	}
}

func TestMaxPerUserUnderConcurrency(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "limited", 1000, 5)
	const users, tries = 20, 15
	var got [users]atomic.Int64
	hammer(users*tries, func(i int) {
		u := i % users
		_, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: fmt.Sprintf("u%d", u), ProductID: "limited", Quantity: 1})
		switch code(err) {
		case "":
			got[u].Add(1)
		case shop.CodeLimitExceeded:
		default:
			t.Errorf("reserve: %v", err)
		}
	})
	for u := range got {
		if n := got[u].Load(); n != 5 {
			t.Errorf("user u%d holds %d units, limit 5", u, n)
		}
	}
	l := env.CheckLedger(t, "limited", 1000)
	if l.HeldPG != users*5 {
		t.Errorf("held %d, want %d", l.HeldPG, users*5)
	}
	// Releasing frees the user's allowance again.
	mine, err := env.Shop.ListMine(ctx, "u0")
	if err != nil || len(mine) != 5 {
		t.Fatalf("list u0: %d holds, %v", len(mine), err)
	}
	if err := env.Shop.Release(ctx, "u0", mine[0].ID); err != nil {
		t.Fatalf("release: %v", err)
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "u0", ProductID: "limited", Quantity: 1}); err != nil {
		t.Fatalf("reserve after release: %v", err)
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "u0", ProductID: "limited", Quantity: 1}); code(err) != shop.CodeLimitExceeded {
		t.Fatalf("sixth unit: %v, want limit_exceeded", err)
	}
	env.CheckLedger(t, "limited", 1000)
}

func TestIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "idem", 10, 10)
	req := shop.ReserveRequest{UserID: "alice", ProductID: "idem", Quantity: 2, IdemKey: "checkout-42"}
	ids := make([]string, 50)
	hammer(50, func(i int) {
		out, err := env.Shop.Reserve(ctx, req)
		if err != nil {
			t.Errorf("reserve %d: %v", i, err)
			return
		}
		ids[i] = out.ID
	})
	for i, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("answer %d is hold %q, answer 0 is %q: one key must give one hold", i, id, ids[0])
		}
	}
	l := env.CheckLedger(t, "idem", 10)
	if len(l.HoldsPG) != 1 || l.HeldPG != 2 || l.Available != 8 {
		t.Fatalf("after 50 retries: %d holds, %d held, %d available; want 1, 2, 8", len(l.HoldsPG), l.HeldPG, l.Available)
	}

	other := req
	other.Quantity = 3
	if _, err := env.Shop.Reserve(ctx, other); code(err) != shop.CodeIdempotencyConflict {
		t.Fatalf("same key, other body: %v, want idempotency_conflict", err)
	}
	otherProduct := req
	env.Product(t, "idem2", 10, 10)
	otherProduct.ProductID = "idem2"
	if _, err := env.Shop.Reserve(ctx, otherProduct); code(err) != shop.CodeIdempotencyConflict {
		t.Fatalf("same key, other product: %v, want idempotency_conflict", err)
	}
	env.CheckLedger(t, "idem2", 10)
	if l := env.ReadLedger(t, "idem2"); l.Available != 10 {
		t.Fatalf("the refused request kept %d units of idem2", 10-l.Available)
	}

	// After the hold ends, the key still answers with the first response and takes nothing.
	if err := env.Shop.Release(ctx, "alice", ids[0]); err != nil {
		t.Fatalf("release: %v", err)
	}
	again, err := env.Shop.Reserve(ctx, req)
	if err != nil || again.ID != ids[0] || again.Available != 8 {
		t.Fatalf("replay after release: %+v, %v; want hold %s with available 8", again, err, ids[0])
	}
	l = env.CheckLedger(t, "idem", 10)
	if l.Available != 10 || l.HeldPG != 0 {
		t.Fatalf("replay took units: available %d, held %d", l.Available, l.HeldPG)
	}
	// Another user may use the same key.
	bob := req
	bob.UserID = "bob"
	if out, err := env.Shop.Reserve(ctx, bob); err != nil || out.ID == ids[0] {
		t.Fatalf("bob with alice's key: %+v, %v", out, err)
	}
}

func TestExpiryReturnsUnitsOnceWithConcurrentSweeps(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "exp", 100, 100)
	for i := 0; i < 30; i++ {
		if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: fmt.Sprintf("u%d", i), ProductID: "exp", Quantity: 2}); err != nil {
			t.Fatalf("reserve: %v", err)
		}
	}
	env.Clock.Advance(5 * time.Minute)
	late, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "late", ProductID: "exp", Quantity: 3})
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	if rep, err := env.Shop.Sweep(ctx); err != nil || rep.Expired != 0 {
		t.Fatalf("sweep before any deadline: %+v, %v", rep, err)
	}
	env.Clock.Advance(5*time.Minute + time.Millisecond) // the first 30 are due, the late one is not

	var expired, freed atomic.Int64
	hammer(4, func(int) {
		rep, err := env.Shop.Sweep(ctx)
		if err != nil {
			t.Errorf("sweep: %v", err)
		}
		expired.Add(int64(rep.Expired))
		freed.Add(int64(rep.UnitsFreed))
	})
	if expired.Load() != 30 || freed.Load() != 60 {
		t.Fatalf("concurrent sweeps expired %d holds and freed %d units; want 30 and 60", expired.Load(), freed.Load())
	}
	l := env.CheckLedger(t, "exp", 100)
	if l.Available != 97 || len(l.HoldsPG) != 1 || l.HoldsPG[late.ID] != 3 {
		t.Fatalf("after expiry: available %d, holds %v; want 97 and only the late hold", l.Available, l.HoldsPG)
	}
	// Sweeping again changes nothing.
	if rep, err := env.Shop.Sweep(ctx); err != nil || rep.Expired != 0 || rep.UnitsFreed != 0 {
		t.Fatalf("second sweep: %+v, %v", rep, err)
	}
	mine, err := env.Shop.ListMine(ctx, "u0")
	if err != nil || len(mine) != 0 {
		t.Fatalf("u0 still lists %d holds: %v", len(mine), err)
	}
	// Releasing an expired hold is fine and gives nothing back twice.
	var r0 string
	if err := env.Pool.QueryRow(ctx, `SELECT id FROM reservations WHERE user_id = 'u0'`).Scan(&r0); err != nil {
		t.Fatal(err)
	}
	if err := env.Shop.Release(ctx, "u0", r0); err != nil {
		t.Fatalf("release expired: %v", err)
	}
	env.CheckLedger(t, "exp", 100)
}

// A hold whose deadline passed cannot be released or listed, and a hold due between two
// sweeps is back within one sweep.
func TestHoldPastDeadlineBeforeSweep(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "due", 5, 5)
	r, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "a", ProductID: "due", Quantity: 5})
	if err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(10*time.Minute + time.Second)
	if mine, _ := env.Shop.ListMine(ctx, "a"); len(mine) != 0 {
		t.Fatalf("a hold past its deadline is still listed: %+v", mine)
	}
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if err := env.Shop.Release(ctx, "a", r.ID); err != nil {
		t.Fatalf("release after expiry: %v", err)
	}
	if l := env.CheckLedger(t, "due", 5); l.Available != 5 {
		t.Fatalf("available %d, want 5", l.Available)
	}
}

var errDied = errors.New("injected: process died")

func TestCrashBetweenGateAndPostgresIsRepairedBySweep(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "crash", 40, 40)
	var calls atomic.Int64
	env.Shop.Fault = func(step string) error {
		if step == "reserve.before_record" && calls.Add(1)%3 == 0 {
			return errDied // every third request dies after the gate and before Postgres
		}
		return nil
	}
	var granted, died atomic.Int64
	hammer(200, func(i int) {
		out, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: fmt.Sprintf("u%d", i), ProductID: "crash", Quantity: 1})
		switch {
		case err == nil:
			granted.Add(out.Quantity)
		case errors.Is(err, errDied):
			died.Add(1)
		case code(err) != shop.CodeOutOfStock:
			t.Errorf("reserve: %v", err)
		}
	})
	env.Shop.Fault = nil
	if died.Load() == 0 {
		t.Fatal("no request died: the fault was not injected")
	}
	l := env.ReadLedger(t, "crash")
	// The dead requests' units are still held by the gate: nothing can be oversold meanwhile.
	if l.HeldPG != granted.Load() || l.Available+int64(len(l.HoldsRedis)) != 40 || l.Available != 0 {
		t.Fatalf("before the sweep: postgres held %d (granted %d), redis available %d with %d holds",
			l.HeldPG, granted.Load(), l.Available, len(l.HoldsRedis))
	}
	orphans := int64(len(l.HoldsRedis)) - granted.Load()
	if orphans <= 0 {
		t.Fatalf("expected units held by dead requests, got %d", orphans)
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "x", ProductID: "crash", Quantity: 1}); code(err) != shop.CodeOutOfStock {
		t.Fatalf("reserve while orphans hold the rest: %v, want out_of_stock", err)
	}
	// A sweep before the deadline leaves them (a slow request may still record its hold).
	if rep, err := env.Shop.Sweep(ctx); err != nil || rep.Orphans != 0 {
		t.Fatalf("early sweep: %+v, %v", rep, err)
	}
	env.Clock.Advance(10*time.Minute + time.Millisecond)
	rep, err := env.Shop.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int64(rep.Orphans) != orphans || int64(rep.Expired) != granted.Load() {
		t.Fatalf("sweep: %+v; want %d orphans and %d expired", rep, orphans, granted.Load())
	}
	if l := env.CheckLedger(t, "crash", 40); l.Available != 40 {
		t.Fatalf("available %d after the sweep, want 40", l.Available)
	}
}

func TestRedisFlushedMidRunNeverOversells(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	const units = 150
	env.Product(t, "flush", units, 1000)
	stop := make(chan struct{})
	var flushes atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
				if err := env.Redis.FlushDB(ctx).Err(); err != nil {
					t.Errorf("flush: %v", err)
				}
				flushes.Add(1)
			}
		}
	}()
	var granted atomic.Int64
	hammer(200, func(i int) {
		for j := 0; j < 3; j++ {
			out, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: fmt.Sprintf("u%d", i), ProductID: "flush", Quantity: 1})
			switch code(err) {
			case "":
				granted.Add(out.Quantity)
			case shop.CodeOutOfStock:
			default:
				t.Errorf("reserve: %v", err)
			}
		}
	})
	close(stop)
	if flushes.Load() == 0 {
		t.Fatal("redis was never flushed")
	}
	if _, err := env.Shop.Product(ctx, "flush"); err != nil { // rebuilds a gate lost to the last flush
		t.Fatal(err)
	}
	l := env.CheckLedger(t, "flush", units)
	if l.HeldPG != granted.Load() || l.HeldPG > units {
		t.Fatalf("postgres holds %d units, shoppers were granted %d, stock %d", l.HeldPG, granted.Load(), units)
	}
	if l.HeldPG != units {
		t.Errorf("600 asks for %d units ended with %d held: units were lost", units, l.HeldPG)
	}
	t.Logf("%d flushes during the run", flushes.Load())
}

func TestRestockAndUpsertDuringReserves(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "re", 50, 1000)
	var granted atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			if _, err := env.Shop.Restock(ctx, "re", 5); err != nil {
				t.Errorf("restock: %v", err)
			}
		}
	}()
	hammer(300, func(i int) {
		out, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: fmt.Sprintf("u%d", i), ProductID: "re", Quantity: 1})
		if err == nil {
			granted.Add(out.Quantity)
		} else if code(err) != shop.CodeOutOfStock {
			t.Errorf("reserve: %v", err)
		}
	})
	wg.Wait()
	l := env.CheckLedger(t, "re", 100)
	if l.HeldPG != granted.Load() {
		t.Fatalf("held %d, granted %d", l.HeldPG, granted.Load())
	}
	// Stock below what is held is refused and changes nothing.
	if _, err := env.Shop.Restock(ctx, "re", -(l.Stock - l.HeldPG + 1)); code(err) != shop.CodeInvalidState {
		t.Fatalf("restock below held: %v", err)
	}
	if _, err := env.Shop.UpsertProduct(ctx, "re", shop.ProductInput{Name: "x", Currency: "usd", Stock: l.HeldPG - 1, MaxPerUser: 1}); code(err) != shop.CodeInvalidState {
		t.Fatalf("upsert below held: %v", err)
	}
	env.CheckLedger(t, "re", 100)
	// Lowering max_per_user reaches the gate at once.
	p, err := env.Shop.UpsertProduct(ctx, "re", shop.ProductInput{Name: "x", Currency: "usd", Stock: l.Stock + 10, MaxPerUser: 1})
	if err != nil || p.Available+p.Held != p.Stock || p.Available < 10 {
		t.Fatalf("upsert: %+v, %v", p, err)
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "z", ProductID: "re", Quantity: 1}); err != nil {
		t.Fatalf("first unit under the new limit: %v", err)
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "z", ProductID: "re", Quantity: 1}); code(err) != shop.CodeLimitExceeded {
		t.Fatalf("second unit under limit 1: %v, want limit_exceeded", err)
	}
	env.CheckLedger(t, "re", 110)
}

func TestReleaseGivesUnitsBackOnce(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "rel", 3, 3)
	r, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "a", ProductID: "rel", Quantity: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Shop.Release(ctx, "b", r.ID); code(err) != shop.CodeNotFound {
		t.Fatalf("release by another user: %v, want not_found", err)
	}
	hammer(20, func(int) {
		if err := env.Shop.Release(ctx, "a", r.ID); err != nil {
			t.Errorf("release: %v", err)
		}
	})
	if l := env.CheckLedger(t, "rel", 3); l.Available != 3 {
		t.Fatalf("available %d after 20 releases, want 3", l.Available)
	}
	if _, err := env.Pool.Exec(ctx, `UPDATE reservations SET status = 'checked_out' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := env.Shop.Release(ctx, "a", r.ID); code(err) != shop.CodeInvalidState {
		t.Fatalf("release checked out: %v, want invalid_state", err)
	}
}

func TestGateRebuiltOnceForAHerd(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "herd", 30, 30)
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "a", ProductID: "herd", Quantity: 4}); err != nil {
		t.Fatal(err)
	}
	if err := env.Redis.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var granted atomic.Int64
	hammer(100, func(i int) {
		if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: fmt.Sprintf("u%d", i), ProductID: "herd", Quantity: 1}); err == nil {
			granted.Add(1)
		} else if code(err) != shop.CodeOutOfStock {
			t.Errorf("reserve: %v", err)
		}
	})
	if granted.Load() != 26 {
		t.Fatalf("granted %d after the flush, want 26 (30 minus the 4 held before)", granted.Load())
	}
	env.CheckLedger(t, "herd", 30)
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "a", ProductID: "nope", Quantity: 1}); code(err) != shop.CodeNotFound {
		t.Fatalf("unknown product: %v", err)
	}
}

// Postgres down after the gate granted units: the units go back before the 503.
func TestPostgresDownUndoesTheGate(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "pgdown", 5, 5)
	dead, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	down := shop.NewService(store.New(dead), env.Shop.Gate)
	down.Now, down.Log = env.Clock.Now, env.Shop.Log
	_, err = down.Reserve(ctx, shop.ReserveRequest{UserID: "a", ProductID: "pgdown", Quantity: 2})
	if code(err) != shop.CodeUnavailable {
		t.Fatalf("reserve with postgres down: %v, want unavailable", err)
	}
	if l := env.CheckLedger(t, "pgdown", 5); l.Available != 5 || len(l.HoldsRedis) != 0 {
		t.Fatalf("the gate kept units for a hold postgres never recorded: %+v", l)
	}
}
