package shop_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// TestDropReadsNeedNoPostgres: once the catalog and the gates are in Redis, what every viewer
// of a drop does costs Postgres nothing: listing products, reading one, asking for an unknown
// one, and being told a product is sold out (or over the limit) all answer with Postgres
// down; only a hold that must be recorded answers 503. A catalog lost with Redis is filled
// again from Postgres, and an admin change reaches it at once.
func TestDropReadsNeedNoPostgres(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "gone", 1, 1)
	env.Product(t, "left", 5, 1)
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "first", ProductID: "gone", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "first", ProductID: "left", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Shop.Products(ctx); err != nil { // fills the catalog from Postgres, once
		t.Fatal(err)
	}
	dead, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	down := shop.NewService(store.New(dead), env.Shop.Gate)
	down.Now, down.Log = env.Clock.Now, env.Shop.Log

	ps, err := down.Products(ctx)
	if err != nil || len(ps) != 2 || ps[0].ID != "gone" || ps[0].Available != 0 || ps[1].Available != 4 || ps[1].Name != "Product left" || ps[1].PriceCents != 1500 {
		t.Fatalf("products with postgres down: %+v, %v", ps, err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want shop.Code
	}{
		{"one product", func() error { _, err := down.Product(ctx, "left"); return err }, ""},
		{"unknown product", func() error { _, err := down.Product(ctx, "nope"); return err }, shop.CodeNotFound},
		// A product the gate lacks is Postgres's to judge (a failover may have lost its
		// catalog entry with its gate): with Postgres down that is a 503.
		{"reserve an unknown product", func() error {
			_, err := down.Reserve(ctx, shop.ReserveRequest{UserID: "b", ProductID: "nope", Quantity: 1})
			return err
		}, shop.CodeUnavailable},
		{"sold out", func() error {
			_, err := down.Reserve(ctx, shop.ReserveRequest{UserID: "b", ProductID: "gone", Quantity: 1})
			return err
		}, shop.CodeOutOfStock},
		{"sold out with a new Idempotency-Key", func() error {
			_, err := down.Reserve(ctx, shop.ReserveRequest{UserID: "b", ProductID: "gone", Quantity: 1, IdemKey: "k1"})
			return err
		}, shop.CodeOutOfStock},
		{"over the limit", func() error {
			_, err := down.Reserve(ctx, shop.ReserveRequest{UserID: "first", ProductID: "left", Quantity: 1})
			return err
		}, shop.CodeLimitExceeded},
		{"a hold to record", func() error {
			_, err := down.Reserve(ctx, shop.ReserveRequest{UserID: "b", ProductID: "left", Quantity: 1})
			return err
		}, shop.CodeUnavailable},
	} {
		if err := tc.call(); code(err) != tc.want {
			t.Errorf("%s with postgres down: %v, want %q", tc.name, err, tc.want)
		}
	}
	env.CheckLedger(t, "left", 5)

	// Redis loses the catalog: the next read fills it from Postgres again.
	if err := env.Redis.Del(ctx, stock.CatalogKey).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := down.Product(ctx, "left"); code(err) != shop.CodeUnavailable {
		t.Fatalf("a lost catalog with postgres down: %v, want unavailable", err)
	}
	if p, err := env.Shop.Product(ctx, "left"); err != nil || p.Available != 4 {
		t.Fatalf("a lost catalog is filled again: %+v %v", p, err)
	}
	// An admin change reaches the catalog at once; an older writer cannot undo it.
	if _, err := env.Shop.UpsertProduct(ctx, "left", shop.ProductInput{Name: "Renamed", PriceCents: 2500, Currency: "usd", Stock: 5, MaxPerUser: 1}); err != nil {
		t.Fatal(err)
	}
	stale := shop.CatalogEntry{Product: shop.Product{ID: "left", Name: "Product left", PriceCents: 1500, Currency: "usd", MaxPerUser: 1}, Gen: 1}
	if err := env.Shop.Gate.PutCatalog(ctx, []shop.CatalogEntry{stale}, true); err != nil {
		t.Fatal(err)
	}
	if p, err := down.Product(ctx, "left"); err != nil || p.Name != "Renamed" || p.PriceCents != 2500 {
		t.Fatalf("after the admin's change: %+v %v", p, err)
	}
}

// TestFailoverLosingANewProductStillSellsIt: Redis fails over to a copy taken before a product
// was created: its catalog entry and its gate are gone, the catalog still says complete. A
// reserve asks Postgres, rebuilds the gate and writes the entry back, so reads find it again.
func TestFailoverLosingANewProductStillSellsIt(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "old", 3, 3)
	if _, err := env.Shop.Products(ctx); err != nil { // a complete catalog without "new"
		t.Fatal(err)
	}
	before, err := env.Redis.Dump(ctx, stock.CatalogKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	env.Product(t, "new", 2, 2)
	// The failover: the older catalog comes back, the new product's keys are gone.
	if err := env.Redis.RestoreReplace(ctx, stock.CatalogKey, 0, before).Err(); err != nil {
		t.Fatal(err)
	}
	k := stock.KeysFor("new")
	if err := env.Redis.Del(ctx, k.Gate, k.Holds, k.Deadlines, k.Users, k.Version).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Shop.Product(ctx, "new"); code(err) != shop.CodeNotFound {
		t.Fatalf("before anything rebuilt it: %v (the catalog says complete and lacks it)", err)
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "a", ProductID: "new", Quantity: 1}); err != nil {
		t.Fatalf("reserve the product the failover lost: %v", err)
	}
	if p, err := env.Shop.Product(ctx, "new"); err != nil || p.Available != 1 {
		t.Fatalf("read after the rebuild: %+v %v", p, err)
	}
	env.CheckLedger(t, "new", 2)
}

// TestIdempotencyKeyAnswersAfterRedisLoss: the first answer of an Idempotency-Key stands for a
// day even when Redis lost the key's entry and the product is sold out since: the rebuild
// marks the product as having lost its entries, and the sold-out path then asks Postgres.
func TestIdempotencyKeyAnswersAfterRedisLoss(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "last", 1, 1)
	req := shop.ReserveRequest{UserID: "ana", ProductID: "last", Quantity: 1, IdemKey: "k-1"}
	first, err := env.Shop.Reserve(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Redis.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	again, err := env.Shop.Reserve(ctx, req)
	if err != nil || again.ID != first.ID {
		t.Fatalf("the same key after a Redis loss: %+v %v, want the first hold %s", again, err, first.ID)
	}
	// Another shopper's new key on the sold-out product is still answered 409.
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "bo", ProductID: "last", Quantity: 1, IdemKey: "k-2"}); code(err) != shop.CodeOutOfStock {
		t.Fatalf("a new key on the sold-out product: %v", err)
	}
	env.CheckLedger(t, "last", 1)
}

// TestConcurrentCreatingPutsKeepTheCount: an operator's double-click creates a product twice
// at once while shoppers already reserve it: the creating PUTs are serialized on the row, so
// Postgres's free units never count a unit twice (sum(free) + held == stock).
func TestConcurrentCreatingPutsKeepTheCount(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	in := shop.ProductInput{Name: "Twice", PriceCents: 100, Currency: "usd", Stock: 20, MaxPerUser: 20}
	hammer(60, func(i int) {
		if i%3 == 0 {
			if _, err := env.Shop.UpsertProduct(ctx, "twice", in); err != nil {
				t.Errorf("put: %v", err)
			}
			return
		}
		_, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: fmt.Sprintf("u%d", i), ProductID: "twice", Quantity: 1})
		if err != nil && code(err) != shop.CodeNotFound && code(err) != shop.CodeOutOfStock {
			t.Errorf("reserve: %v", err)
		}
	})
	env.CheckLedger(t, "twice", 20)
}

// TestIdempotencyKeyAnswersAfterAFailover: a failover to an older copy loses the key's entry;
// a retry with the same key, with no sweep in between, gets its first hold back, whatever the
// older copy answers: units (Postgres refuses a second hold for the key), sold out, or the
// shopper at the limit (Postgres keeps the key's first answer and is asked).
func TestIdempotencyKeyAnswersAfterAFailover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		stock int64
		// before runs before the copy is taken, between runs after it and before ana's
		// keyed reserve.
		before, between func(t *testing.T, env *testenv.Env)
	}{
		{name: "the copy has units", stock: 1},
		{name: "the copy is sold out", stock: 1,
			before: func(t *testing.T, env *testenv.Env) { reserveN(t, env, "bob", "one") },
			between: func(t *testing.T, env *testenv.Env) {
				rs, err := env.Shop.ListMine(ctx, "bob")
				if err != nil || len(rs) != 1 {
					t.Fatalf("bob's holds: %v, %v", rs, err)
				}
				if err := env.Shop.Release(ctx, "bob", rs[0].ID); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "the copy has the shopper at the limit", stock: 2,
			before: func(t *testing.T, env *testenv.Env) { reserveN(t, env, "ana", "one") },
			between: func(t *testing.T, env *testenv.Env) {
				rs, err := env.Shop.ListMine(ctx, "ana")
				if err != nil || len(rs) != 1 {
					t.Fatalf("ana's holds: %v, %v", rs, err)
				}
				if err := env.Shop.Release(ctx, "ana", rs[0].ID); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := testenv.NewEnv(t)
			env.Product(t, "one", tc.stock, 1)
			if tc.before != nil {
				tc.before(t, env)
			}
			older := testenv.DumpProduct(t, env.Redis, "one")
			if tc.between != nil {
				tc.between(t, env)
			}
			req := shop.ReserveRequest{UserID: "ana", ProductID: "one", Quantity: 1, IdemKey: "k-1"}
			first, err := env.Shop.Reserve(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			testenv.RestoreProduct(t, env.Redis, "one", older)
			for i := range 2 {
				again, err := env.Shop.Reserve(ctx, req)
				if err != nil || again.ID != first.ID {
					t.Fatalf("retry %d with the same key after a failover: %+v %v, want the first hold %s", i+1, again, err, first.ID)
				}
			}
			env.Clock.Advance(2 * time.Minute)
			if _, err := env.Shop.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			if l := env.CheckLedger(t, "one", tc.stock); l.HeldPG != 1 || l.HoldsPG[first.ID] != 1 {
				t.Fatalf("after the retries: %+v; want only the first hold", l)
			}
		})
	}
}

// rebuildHook runs before once, just before the gate it wraps is rebuilt (inside the
// rebuild's transaction, after Postgres was read).
type rebuildHook struct {
	shop.Gate
	before func()
}

func (g *rebuildHook) Rebuild(ctx context.Context, st shop.GateState, now time.Time) (bool, error) {
	if f := g.before; f != nil {
		g.before = nil
		f()
	}
	return g.Gate.Rebuild(ctx, st, now)
}

// TestReleaseDuringARebuildReturnsItsUnits: a hold released after the rebuild read Postgres
// and before it set the gate finds no gate to give its units to; the rebuild settles it, so
// the units are back at once (not at the hold's deadline).
func TestReleaseDuringARebuildReturnsItsUnits(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "mid", 3, 3)
	r, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "ana", ProductID: "mid", Quantity: 2})
	if err != nil {
		t.Fatal(err)
	}
	hook := &rebuildHook{Gate: env.Shop.Gate}
	hook.before = func() {
		if err := env.Shop.Release(ctx, "ana", r.ID); err != nil {
			t.Errorf("release inside the rebuild: %v", err)
		}
	}
	env.Shop.Gate = hook
	if _, err := env.Shop.Restock(ctx, "mid", 1); err != nil { // rebuilds the gate
		t.Fatal(err)
	}
	if l := env.CheckLedger(t, "mid", 4); l.Available != 4 || l.HeldPG != 0 {
		t.Fatalf("after a release inside the rebuild: available %d, held %d, want 4 and 0", l.Available, l.HeldPG)
	}
}

// TestLimitHoldsAfterAFailover: a failover to a copy taken before a shopper's holds loses the
// gate's count of them; Postgres still counts the shopper's units and refuses a hold past
// max_per_user, the stale gate is rebuilt, and the shopper is answered limit_exceeded.
func TestLimitHoldsAfterAFailover(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "cap", 10, 2)
	older := testenv.DumpProduct(t, env.Redis, "cap")
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "ana", ProductID: "cap", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	testenv.RestoreProduct(t, env.Redis, "cap", older)
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "ana", ProductID: "cap", Quantity: 2}); code(err) != shop.CodeLimitExceeded {
		t.Fatalf("past the limit after a failover: %v, want limit_exceeded", err)
	}
	var units int64
	if err := env.Pool.QueryRow(ctx, `SELECT COALESCE(sum(quantity), 0) FROM reservations WHERE product_id = 'cap' AND user_id = 'ana'
		AND status IN ('reserved', 'checked_out', 'fulfilled')`).Scan(&units); err != nil || units != 2 {
		t.Fatalf("ana's units in postgres: %d %v, want 2", units, err)
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "bo", ProductID: "cap", Quantity: 2}); err != nil {
		t.Fatalf("another shopper: %v", err)
	}
	env.CheckLedger(t, "cap", 10)
}
