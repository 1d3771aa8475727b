package testenv

import (
	"context"
	"fmt"
	"testing"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
)

// Sizes returns n variants named us-1.. with stock units each, for a product in sizes.
func Sizes(n int, stockUnits int64) []shop.VariantInput {
	vs := make([]shop.VariantInput, n)
	for i := range vs {
		id := fmt.Sprintf("us-%d", i+1)
		vs[i] = shop.VariantInput{ID: id, Name: "US " + fmt.Sprint(i+1), Stock: stockUnits}
	}
	return vs
}

// ProductInSizes creates a product with the given variants and per-user limit.
func (e *Env) ProductInSizes(t testing.TB, id string, maxPerUser int64, vs []shop.VariantInput) shop.AdminProduct {
	t.Helper()
	p, err := e.Shop.UpsertProduct(context.Background(), id, shop.ProductInput{
		Name: "Product " + id, PriceCents: 1500, Currency: "usd", MaxPerUser: maxPerUser, Variants: vs,
	})
	if err != nil {
		t.Fatalf("create product %s: %v", id, err)
	}
	return p
}

// VariantLedger is one variant's books as Postgres and Redis keep them.
type VariantLedger struct {
	Stock, Sold, HeldPG, FreePG int64 // Postgres
	Available                   int64 // Redis
}

// CheckVariants fails the test unless Redis and Postgres agree on every variant of the
// product at rest, and the per-shopper counts agree with the holds: per variant, available
// (Redis) + held (Postgres) == stock == free (Postgres slots) + held; the product's stock and
// sold are the sums over its variants; product_users (Postgres) and the gate's per-user counts
// (Redis) equal each shopper's live and bought units over every variant, and none passes
// max_per_user. It returns the variants' books.
func (e *Env) CheckVariants(t testing.TB, id string) map[string]VariantLedger {
	t.Helper()
	ctx := context.Background()
	out := map[string]VariantLedger{}
	rows, err := e.Pool.Query(ctx, `SELECT v.id, v.stock, v.sold,
		COALESCE((SELECT sum(quantity) FROM reservations r WHERE r.product_id = v.product_id AND r.variant_id = v.id
			AND r.status IN ('reserved', 'checked_out')), 0),
		COALESCE((SELECT sum(free) FROM product_slots s WHERE s.product_id = v.product_id AND s.variant_id = v.id), 0)
		FROM product_variants v WHERE v.product_id = $1`, id)
	if err != nil {
		t.Fatalf("read variants of %s: %v", id, err)
	}
	var stockSum, soldSum int64
	for rows.Next() {
		var vid string
		var l VariantLedger
		if err := rows.Scan(&vid, &l.Stock, &l.Sold, &l.HeldPG, &l.FreePG); err != nil {
			t.Fatalf("scan variant: %v", err)
		}
		out[vid] = l
		stockSum += l.Stock
		soldSum += l.Sold
	}
	if rows.Err() != nil {
		t.Fatalf("read variants: %v", rows.Err())
	}
	var pStock, pSold, max int64
	if err := e.Pool.QueryRow(ctx, `SELECT stock, sold, max_per_user FROM products WHERE id = $1`, id).Scan(&pStock, &pSold, &max); err != nil {
		t.Fatalf("read product %s: %v", id, err)
	}
	if pStock != stockSum || pSold != soldSum {
		t.Errorf("product %s: stock %d, sold %d; its variants sum to %d, %d", id, pStock, pSold, stockSum, soldSum)
	}
	gate, err := e.Redis.HGetAll(ctx, stock.KeysFor(id).Gate).Result()
	if err != nil {
		t.Fatalf("read gate of %s: %v", id, err)
	}
	a, ok := stock.ParseAvailability(gate)
	if !ok {
		t.Fatalf("product %s has no gate", id)
	}
	var total int64
	for vid, l := range out {
		l.Available = a.Variants[vid]
		out[vid] = l
		total += l.Available
		if l.Available < 0 || l.Available+l.HeldPG != l.Stock {
			t.Errorf("variant %s/%s: available %d (redis) + held %d (postgres) != stock %d", id, vid, l.Available, l.HeldPG, l.Stock)
		}
		if l.FreePG+l.HeldPG != l.Stock {
			t.Errorf("variant %s/%s: free %d (postgres slots) + held %d != stock %d", id, vid, l.FreePG, l.HeldPG, l.Stock)
		}
	}
	if len(a.Variants) != len(out) || total != a.Total {
		t.Errorf("product %s: gate variants %v (total %d), postgres has %d variants", id, a.Variants, a.Total, len(out))
	}
	// Per shopper, over every variant.
	want := map[string]int64{}
	urows, err := e.Pool.Query(ctx, `SELECT user_id, sum(quantity) FROM reservations WHERE product_id = $1
		AND status IN ('reserved', 'checked_out', 'fulfilled') GROUP BY user_id`, id)
	if err != nil {
		t.Fatalf("read shoppers: %v", err)
	}
	for urows.Next() {
		var u string
		var n int64
		if err := urows.Scan(&u, &n); err != nil {
			t.Fatalf("scan shopper: %v", err)
		}
		want[u] = n
		if n > max {
			t.Errorf("product %s: shopper %s has %d units, max_per_user %d", id, u, n, max)
		}
	}
	pu := map[string]int64{}
	prows, err := e.Pool.Query(ctx, `SELECT user_id, units FROM product_users WHERE product_id = $1 AND units <> 0`, id)
	if err != nil {
		t.Fatalf("read product_users: %v", err)
	}
	for prows.Next() {
		var u string
		var n int64
		if err := prows.Scan(&u, &n); err != nil {
			t.Fatalf("scan product_users: %v", err)
		}
		pu[u] = n
	}
	users, err := e.Redis.HGetAll(ctx, stock.KeysFor(id).Users).Result()
	if err != nil {
		t.Fatalf("read gate users: %v", err)
	}
	for u, n := range want {
		if pu[u] != n {
			t.Errorf("product %s: product_users says %s has %d, holds say %d", id, u, pu[u], n)
		}
		if users[u] != fmt.Sprint(n) {
			t.Errorf("product %s: the gate counts %q for %s, holds say %d", id, users[u], u, n)
		}
	}
	if len(pu) != len(want) {
		t.Errorf("product %s: product_users has %d shoppers, holds %d", id, len(pu), len(want))
	}
	return out
}
