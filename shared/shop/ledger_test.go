package shop_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lastunit/shared/rooms"
	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

func gateGen(t *testing.T, env *testenv.Env, id string) int64 {
	t.Helper()
	g, err := env.Redis.HGet(ctx, stock.KeysFor(id).Gate, "gen").Int64()
	if err != nil {
		t.Fatalf("read gate generation of %s: %v", id, err)
	}
	return g
}

func holdStatus(t *testing.T, env *testenv.Env, id string) string {
	t.Helper()
	var st string
	if err := env.Pool.QueryRow(ctx, `SELECT status FROM reservations WHERE id = $1`, id).Scan(&st); err != nil {
		t.Fatalf("read hold %s: %v", id, err)
	}
	return st
}

// TestRedisFailoverLosingReservesNeverOversells reproduces a failover to a replica that
// missed acknowledged reserves: the product's keys are copied (DUMP), Alice reserves (201),
// the old copy is restored, then Bob reserves. Postgres refuses Bob's hold from the stale
// gate (its slots count no free units), the gate is dropped and rebuilt from Postgres under a
// new generation, and Bob's retry is answered from the truth. Where Postgres has Bob's units
// free, his hold is granted and the sweep rebuilds the gate that still lacks Alice's hold.
// Without the slots (today's main) Bob gets 201 and Postgres holds 8 units of 4.
func TestRedisFailoverLosingReservesNeverOversells(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		stock, alice, bob int64
		want              shop.Code // Bob's answer
		staleBySweep      int       // stale gates the sweep still finds afterwards
	}{
		{"sold out: the second shopper gets out_of_stock", 4, 4, 4, shop.CodeOutOfStock, 0},
		{"one unit asked of a sold-out product", 4, 4, 1, shop.CodeOutOfStock, 0},
		{"units left: postgres grants them, the sweep rebuilds the gate", 6, 4, 2, "", 1},
		{"units left but fewer than asked", 6, 4, 3, shop.CodeOutOfStock, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := testenv.NewEnv(t)
			env.Product(t, "drop", tc.stock, tc.stock)
			gen0 := gateGen(t, env, "drop")
			replica := testenv.DumpProduct(t, env.Redis, "drop")

			a, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "alice", ProductID: "drop", Quantity: tc.alice})
			if err != nil {
				t.Fatalf("alice: %v", err)
			}
			testenv.RestoreProduct(t, env.Redis, "drop", replica) // the failover
			if l := env.ReadLedger(t, "drop"); l.Available != tc.stock || len(l.HoldsRedis) != 0 {
				t.Fatalf("the restored gate should be the old copy: %+v", l)
			}

			b, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "bob", ProductID: "drop", Quantity: tc.bob})
			if code(err) != tc.want {
				t.Fatalf("bob asked %d of %d with %d held: %v (hold %q), want %q", tc.bob, tc.stock, tc.alice, err, b.ID, tc.want)
			}
			c, err := env.ReadPGCount(ctx, "drop")
			if err != nil {
				t.Fatal(err)
			}
			if c.Held > c.Stock {
				t.Fatalf("postgres holds %d units of %d", c.Held, c.Stock)
			}
			wantHeld := tc.alice
			if tc.want == "" {
				wantHeld += tc.bob
			}
			if c.Held != wantHeld {
				t.Errorf("postgres holds %d units, want %d", c.Held, wantHeld)
			}
			if st := holdStatus(t, env, a.ID); st != shop.StatusReserved {
				t.Errorf("alice's hold, answered 201, is %s", st)
			}
			// Where Postgres could cover Bob, nothing refused him: the sweep finds the gate
			// missing Alice's settled hold and rebuilds it.
			env.Clock.Advance(2 * time.Minute)
			rep, err := env.Shop.Sweep(ctx)
			if err != nil {
				t.Fatalf("sweep: %v", err)
			}
			if rep.StaleGates != tc.staleBySweep {
				t.Errorf("sweep rebuilt %d stale gates, want %d", rep.StaleGates, tc.staleBySweep)
			}
			if g := gateGen(t, env, "drop"); g <= gen0 {
				t.Errorf("gate generation %d after the failover, was %d: the stale gate was not rebuilt", g, gen0)
			}
			l := env.CheckLedger(t, "drop", tc.stock)
			if _, ok := l.HoldsRedis[a.ID]; !ok {
				t.Errorf("the rebuilt gate lacks alice's hold")
			}
		})
	}
}

// TestPostgresCountUnderHammer runs 300 shoppers reserving 1–4 units of a hot product (some
// releasing again), restocks up and down, and an expiry sweep with the clock moved past
// the first holds' deadlines, while a sampler reads Postgres in single snapshots: it never
// holds more than stock, and its slots always count exactly the units not held. Stock is
// small against 16 slots, so single slots run dry and takes pool the slots (rebalance).
func TestPostgresCountUnderHammer(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	const stock0 = 120
	env.Product(t, "hot", stock0, 1000)
	var restocked atomic.Int64
	var granted, refused atomic.Int64
	done := make(chan struct{})
	var samples atomic.Int64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			c, err := env.ReadPGCount(ctx, "hot")
			if err != nil {
				t.Errorf("sample: %v", err)
				return
			}
			samples.Add(1)
			if c.Held > c.Stock || c.Free < 0 || c.Free+c.Held != c.Stock {
				t.Errorf("postgres snapshot: stock %d, held %d, free %d", c.Stock, c.Held, c.Free)
			}
		}
	}()
	hammer(300, func(i int) {
		switch {
		case i%50 == 0:
			d := int64(5)
			if i%100 == 0 {
				d = -5
			}
			if _, err := env.Shop.Restock(ctx, "hot", d); err == nil {
				restocked.Add(d)
			} else if code(err) != shop.CodeInvalidState {
				t.Errorf("restock %d: %v", d, err)
			}
			return
		case i == 149:
			env.Clock.Advance(11 * time.Minute) // the holds taken so far are past their deadline
			if _, err := env.Shop.Sweep(ctx); err != nil {
				t.Errorf("sweep: %v", err)
			}
			return
		}
		q := int64(1 + rand.IntN(4))
		r, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: fmt.Sprintf("u%d", i), ProductID: "hot", Quantity: q})
		switch code(err) {
		case "":
			granted.Add(1)
			if i%2 == 0 {
				if err := env.Shop.Release(ctx, r.UserID, r.ID); err != nil {
					t.Errorf("release: %v", err)
				}
			}
		case shop.CodeOutOfStock:
			refused.Add(1)
		default:
			t.Errorf("reserve %d: %v", q, err)
		}
	})
	close(done)
	sampler.Wait()
	if refused.Load() == 0 || granted.Load() == 0 {
		t.Fatalf("granted %d, refused %d: the test did not contend", granted.Load(), refused.Load())
	}
	env.Clock.Advance(11 * time.Minute)
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatalf("final sweep: %v", err)
	}
	l := env.CheckLedger(t, "hot", stock0+restocked.Load())
	if l.HeldPG != 0 || l.Available != l.Stock {
		t.Errorf("after every deadline: held %d, available %d of %d", l.HeldPG, l.Available, l.Stock)
	}
	t.Logf("%d holds granted, %d refused, %d snapshots sampled", granted.Load(), refused.Load(), samples.Load())
}

// TestGateRebuildReadsOneSnapshot commits a release inside the rebuild's window (between
// locking the product and reading its holds, held open by the store's Pause hook). The
// rebuilt gate must count the released units exactly once: before, available came from the
// first statement (hold still live) and the holds from the second (hold gone), and the units
// were lost for good.
func TestGateRebuildReadsOneSnapshot(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "snap", 10, 10)
	h, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "alice", ProductID: "snap", Quantity: 3})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(env.Pool)
	var once sync.Once
	released := false
	st.Pause = func(step string) {
		if step != "rebuild.locked" {
			return
		}
		once.Do(func() {
			// Another function releases the hold and commits while the rebuild waits.
			if err := env.Shop.Release(ctx, "alice", h.ID); err != nil {
				t.Errorf("release inside the window: %v", err)
			}
			released = true
		})
	}
	rebuilder := shop.NewService(st, env.Shop.Gate) // a second function instance with the paused store
	rebuilder.Now, rebuilder.Log = env.Clock.Now, env.Shop.Log
	if err := env.Redis.Del(ctx, stock.KeysFor("snap").Gate).Err(); err != nil { // the gate is lost
		t.Fatal(err)
	}
	if _, err := rebuilder.Product(ctx, "snap"); err != nil { // a read rebuilds the missing gate
		t.Fatal(err)
	}
	if !released {
		t.Fatal("the rebuild never reached its window")
	}
	l := env.CheckLedger(t, "snap", 10)
	if l.Available != 10 {
		t.Errorf("available %d after the release, want 10", l.Available)
	}
}

// viewer follows a product as the client in docs/live-stock.md does: it keeps a message only when its
// version is above the last one it kept.
type viewer struct {
	avail, ver int64
	kept       int
}

func (v *viewer) see(m rooms.Stock) {
	if m.Version > v.ver {
		v.avail, v.ver = m.Available, m.Version
		v.kept++
	}
}

// TestLiveStockVersionNeverGoesBack follows a product through rooms.Table.Snapshot (what
// subscribe answers and the broadcaster sends) across a FLUSHDB and a rebuild, and across a
// failover that restores an older copy of the product's keys (its version included) followed
// by the refusal that rebuilds the stale gate. After each repair the viewer must accept the
// new value: the version is above every version seen before. Before, a rebuild restarted the
// version at now-in-ms (or kept the restored one), below what viewers had seen, and they
// dropped every later message.
func TestLiveStockVersionNeverGoesBack(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "live", 1000, 1000)
	table := rooms.NewTable(env.Redis)
	var v viewer
	look := func(step string) rooms.Stock {
		t.Helper()
		m, ok, err := table.Snapshot(ctx, "live")
		if err != nil || !ok {
			t.Fatalf("%s: snapshot: %v, %v", step, ok, err)
		}
		v.see(m)
		return m
	}
	churn := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			r, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "u", ProductID: "live", Quantity: 1})
			if err != nil {
				t.Fatal(err)
			}
			look("reserve")
			if err := env.Shop.Release(ctx, "u", r.ID); err != nil {
				t.Fatal(err)
			}
			look("release")
		}
	}
	mustSee := func(step string) {
		t.Helper()
		m := look(step)
		if v.ver != m.Version || v.avail != m.Available {
			t.Fatalf("%s: the viewer shows %d at version %d, the gate says %d at version %d: it dropped the current value",
				step, v.avail, v.ver, m.Available, m.Version)
		}
	}

	churn(20)
	mustSee("before any fault")

	// Redis loses everything; the next read rebuilds the gate.
	if err := env.Redis.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Shop.Product(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	mustSee("after FLUSHDB and a rebuild")
	churn(5)
	mustSee("changes after the rebuild")

	// A failover to a replica that missed the last writes: the version goes back with it
	// until the stale gate is found. Alice's hold is missing from the old copy, so Postgres
	// refuses the next hold that would need her units, and the gate is rebuilt.
	replica := testenv.DumpProduct(t, env.Redis, "live")
	churn(30)
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "alice", ProductID: "live", Quantity: 999}); err != nil {
		t.Fatal(err)
	}
	mustSee("alice holds 999")
	testenv.RestoreProduct(t, env.Redis, "live", replica)
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "bob", ProductID: "live", Quantity: 2}); code(err) != shop.CodeOutOfStock {
		t.Fatalf("bob on the stale gate: %v, want out_of_stock", err)
	}
	mustSee("after the failover and the rebuild")
	churn(5)
	mustSee("changes after the failover")
	env.CheckLedger(t, "live", 1000)
}
