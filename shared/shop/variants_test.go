package shop_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lastunit/shared/rooms"
	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

func ptr[T any](v T) *T { return &v }

// TestReserveVariants: a reserve takes units of one variant; every answer names the variant,
// sold-out is about the variant, max_per_user counts every variant of the product together,
// and bad or missing variant ids change nothing.
func TestReserveVariants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	env.ProductInSizes(t, "shoe", 2, []shop.VariantInput{
		{ID: "us-9", Name: "US 9", Stock: 1},
		{ID: "us-10", Name: "US 10", Stock: 5, PriceCents: ptr(int64(2000))},
	})
	env.Product(t, "tee", 3, 5) // one variant, default

	tests := []struct {
		name      string
		req       shop.ReserveRequest
		code      shop.Code
		field     string // for invalid_request
		variant   string // for a hold
		available int64  // the product's after the hold, or the variant's for out_of_stock
	}{
		{name: "one size", req: shop.ReserveRequest{UserID: "a", ProductID: "shoe", VariantID: "us-9", Quantity: 1}, variant: "us-9", available: 5},
		{name: "that size is gone", req: shop.ReserveRequest{UserID: "b", ProductID: "shoe", VariantID: "us-9", Quantity: 1}, code: shop.CodeOutOfStock, available: 0},
		{name: "another size", req: shop.ReserveRequest{UserID: "b", ProductID: "shoe", VariantID: "us-10", Quantity: 2}, variant: "us-10", available: 3},
		{name: "the limit counts every size", req: shop.ReserveRequest{UserID: "a", ProductID: "shoe", VariantID: "us-10", Quantity: 2}, code: shop.CodeLimitExceeded},
		{name: "within the limit over sizes", req: shop.ReserveRequest{UserID: "a", ProductID: "shoe", VariantID: "us-10", Quantity: 1}, variant: "us-10", available: 2},
		{name: "no size named", req: shop.ReserveRequest{UserID: "c", ProductID: "shoe", Quantity: 1}, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "unknown size", req: shop.ReserveRequest{UserID: "c", ProductID: "shoe", VariantID: "us-11", Quantity: 1}, code: shop.CodeNotFound},
		{name: "a size that breaks the pattern", req: shop.ReserveRequest{UserID: "c", ProductID: "shoe", VariantID: "US 9", Quantity: 1}, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "one-variant product, no variant named", req: shop.ReserveRequest{UserID: "c", ProductID: "tee", Quantity: 1}, variant: "default", available: 2},
		{name: "one-variant product, default named", req: shop.ReserveRequest{UserID: "c", ProductID: "tee", VariantID: "default", Quantity: 1}, variant: "default", available: 1},
		{name: "one-variant product, another named", req: shop.ReserveRequest{UserID: "c", ProductID: "tee", VariantID: "us-9", Quantity: 1}, code: shop.CodeNotFound},
	}
	for _, tc := range tests {
		r, err := env.Shop.Reserve(ctx, tc.req)
		if tc.code != "" {
			if code(err) != tc.code {
				t.Fatalf("%s: got %v, want %s", tc.name, err, tc.code)
			}
			e := err.(*shop.Error)
			if tc.field != "" && e.Details["field"] != tc.field {
				t.Fatalf("%s: details %v, want field %s", tc.name, e.Details, tc.field)
			}
			if tc.code == shop.CodeOutOfStock && e.Details["available"] != tc.available {
				t.Fatalf("%s: details %v, want the variant's available %d", tc.name, e.Details, tc.available)
			}
			if tc.code == shop.CodeLimitExceeded && e.Details["limit"] != int64(2) {
				t.Fatalf("%s: details %v", tc.name, e.Details)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.VariantID != tc.variant || r.Available != tc.available {
			t.Fatalf("%s: hold of %q, available %d; want %q, %d", tc.name, r.VariantID, r.Available, tc.variant, tc.available)
		}
	}
	env.CheckVariants(t, "shoe")
	env.CheckVariants(t, "tee")

	p, err := env.Shop.Product(ctx, "shoe")
	if err != nil {
		t.Fatal(err)
	}
	want := []shop.Variant{{ID: "us-9", Name: "US 9", PriceCents: 1500, Available: 0}, {ID: "us-10", Name: "US 10", PriceCents: 2000, Available: 2}}
	if p.Available != 2 || len(p.Variants) != 2 || p.Variants[0] != want[0] || p.Variants[1] != want[1] {
		t.Fatalf("product: %+v", p)
	}
	mine, err := env.Shop.ListMine(ctx, "a")
	if err != nil || len(mine) != 2 || mine[0].VariantID == mine[1].VariantID { // us-9 and us-10, in any order
		t.Fatalf("a's holds: %+v %v", mine, err)
	}
}

// TestVariantsCheckoutExpiryAndFulfillment: an order's items carry their variants and prices;
// units come back to their own variant on release and expiry, and leave its stock on
// fulfillment; the books agree per variant all along.
func TestVariantsCheckoutExpiryAndFulfillment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t).WithPayments(t)
	env.ProductInSizes(t, "shoe", 10, []shop.VariantInput{
		{ID: "s", Name: "Small", Stock: 4},
		{ID: "m", Name: "Medium", Stock: 4, PriceCents: ptr(int64(2500))},
	})
	hold := func(user, v string, q int64) shop.Reserved {
		r, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: user, ProductID: "shoe", VariantID: v, Quantity: q})
		if err != nil {
			t.Fatalf("reserve %s %d: %v", v, q, err)
		}
		return r
	}
	a, b := hold("u", "s", 1), hold("u", "m", 2)
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "u", ReservationIDs: []string{a.ID, b.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if o.AmountCents != 1500+2*2500 || len(o.Items) != 2 {
		t.Fatalf("order: %+v", o)
	}
	for _, it := range o.Items {
		want := map[string]string{a.ID: "s", b.ID: "m"}[it.ReservationID]
		if it.VariantID != want || it.UnitPriceCents != map[string]int64{"s": 1500, "m": 2500}[want] {
			t.Fatalf("item %+v", it)
		}
	}
	// A hold released goes back to its size; one left to expire too.
	r := hold("v", "m", 1)
	if err := env.Shop.Release(ctx, "v", r.ID); err != nil {
		t.Fatal(err)
	}
	hold("w", "s", 3)
	ls := env.CheckVariants(t, "shoe")
	if ls["s"].Available != 0 || ls["m"].Available != 2 {
		t.Fatalf("before expiry: %+v", ls)
	}
	env.Clock.Advance(11 * time.Minute)
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	ls = env.CheckVariants(t, "shoe")
	if ls["s"].Available != 3 || ls["m"].Available != 2 {
		t.Fatalf("after expiry: %+v", ls)
	}
	// Paid and fulfilled: the units leave each size's stock into its sold.
	if err := env.Shop.HandlePaymentEvent(ctx, shop.PaymentEvent{ID: "evt_v1", Type: shop.EventPaymentSucceeded,
		PaymentIntentID: *o.PaymentIntentID, AmountCents: o.AmountCents, Currency: o.Currency}); err != nil {
		t.Fatal(err)
	}
	if err := env.Shop.Fulfill(ctx, o.ID, 1); err != nil {
		t.Fatal(err)
	}
	ls = env.CheckVariants(t, "shoe")
	if ls["s"].Stock != 3 || ls["s"].Sold != 1 || ls["m"].Stock != 2 || ls["m"].Sold != 2 {
		t.Fatalf("after fulfillment: %+v", ls)
	}
	ap, err := env.Shop.AdminProducts(ctx)
	if err != nil || len(ap) != 1 {
		t.Fatal(err)
	}
	p := ap[0]
	if p.Stock != 5 || p.Sold != 3 || p.Held != 0 || p.Available != 5 || len(p.Variants) != 2 ||
		p.Variants[1].Stock != 2 || p.Variants[1].Sold != 2 || p.Variants[1].Available != 2 || p.Variants[1].PriceCents != 2500 {
		t.Fatalf("admin product: %+v", p)
	}
}

// TestUpsertAndRestockVariants: the admin's rules for variants (API.md, "Variants"), each
// refusal changing nothing.
func TestUpsertAndRestockVariants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	base := shop.ProductInput{Name: "Shoe", PriceCents: 1000, Currency: "usd", MaxPerUser: 5}
	with := func(vs ...shop.VariantInput) shop.ProductInput {
		in := base
		in.Variants = append([]shop.VariantInput{}, vs...) // never nil: nil is the stock form
		return in
	}
	withStock := func(n int64) shop.ProductInput { in := base; in.Stock = n; return in }
	v := func(id string, stock int64) shop.VariantInput {
		return shop.VariantInput{ID: id, Name: id, Stock: stock}
	}
	env.ProductInSizes(t, "shoe", 5, []shop.VariantInput{v("a", 3), v("b", 3), v("c", 3)})
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "u", ProductID: "shoe", VariantID: "a", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	many := make([]shop.VariantInput, 101)
	for i := range many {
		many[i] = v(fmt.Sprintf("v%d", i), 1)
	}
	long := make([]rune, 101)
	for i := range long {
		long[i] = 'é'
	}

	tests := []struct {
		name  string
		in    shop.ProductInput
		code  shop.Code
		field string
		want  map[string]int64 // variant -> stock after
	}{
		{name: "no variants", in: with([]shop.VariantInput{}...), code: shop.CodeInvalidRequest, field: "variants"},
		{name: "101 variants", in: with(many...), code: shop.CodeInvalidRequest, field: "variants"},
		{name: "bad id", in: with(v("A", 1)), code: shop.CodeInvalidRequest, field: "variants[0].id"},
		{name: "id twice", in: with(v("a", 3), v("a", 1)), code: shop.CodeInvalidRequest, field: "variants[1].id"},
		{name: "empty name", in: with(shop.VariantInput{ID: "a", Stock: 3}), code: shop.CodeInvalidRequest, field: "variants[0].name"},
		{name: "name over 100 characters", in: with(shop.VariantInput{ID: "a", Name: string(long), Stock: 3}), code: shop.CodeInvalidRequest, field: "variants[0].name"},
		{name: "negative stock", in: with(v("a", -1)), code: shop.CodeInvalidRequest, field: "variants[0].stock"},
		{name: "negative price", in: with(shop.VariantInput{ID: "a", Name: "a", Stock: 3, PriceCents: ptr(int64(-1))}), code: shop.CodeInvalidRequest, field: "variants[0].price_cents"},
		{name: "stock on a product in sizes", in: withStock(9), code: shop.CodeInvalidRequest, field: "stock"},
		{name: "below a size's held units", in: with(v("a", 1), v("b", 3), v("c", 3)), code: shop.CodeInvalidState},
		{name: "removing a size that was held", in: with(v("b", 3), v("c", 3)), code: shop.CodeInvalidState},
		{name: "removing a size never held, adding one", in: with(v("a", 2), v("b", 4), v("d", 1)), want: map[string]int64{"a": 2, "b": 4, "d": 1}},
		{name: "one size left, the never-held ones removed", in: with(v("a", 5)), want: map[string]int64{"a": 5}},
	}
	for _, tc := range tests {
		before := env.CheckVariants(t, "shoe")
		p, err := env.Shop.UpsertProduct(ctx, "shoe", tc.in)
		if tc.code != "" {
			if code(err) != tc.code {
				t.Fatalf("%s: got %v, want %s", tc.name, err, tc.code)
			}
			if tc.field != "" && err.(*shop.Error).Details["field"] != tc.field {
				t.Fatalf("%s: %v, want field %s", tc.name, err.(*shop.Error).Details, tc.field)
			}
			if after := env.CheckVariants(t, "shoe"); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("%s: refused, yet the variants changed: %v -> %v", tc.name, before, after)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := map[string]int64{}
		for _, v := range p.Variants {
			got[v.ID] = v.Stock
			if v.Available+v.Held != v.Stock {
				t.Fatalf("%s: variant %+v", tc.name, v)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Fatalf("%s: variants %v, want %v", tc.name, got, tc.want)
		}
		env.CheckVariants(t, "shoe")
	}
	// The stock form on a product with one variant works as before variants, whatever its id.
	if p, err := env.Shop.UpsertProduct(ctx, "shoe", withStock(7)); err != nil || p.Stock != 7 || len(p.Variants) != 1 || p.Variants[0].ID != "a" {
		t.Fatalf("stock form on one size: %+v %v", p, err)
	}

	env.ProductInSizes(t, "boot", 5, []shop.VariantInput{v("x", 2), v("y", 2)})
	restocks := []struct {
		name, variant string
		delta         int64
		code          shop.Code
		field         string
		stock         int64 // the variant's after
	}{
		{name: "one size", variant: "y", delta: 3, stock: 5},
		{name: "no size named", variant: "", delta: 1, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "unknown size", variant: "z", delta: 1, code: shop.CodeNotFound},
		{name: "bad size id", variant: "Z!", delta: 1, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "below zero", variant: "x", delta: -3, code: shop.CodeInvalidState},
		{name: "down to zero", variant: "x", delta: -2, stock: 0},
	}
	for _, tc := range restocks {
		p, err := env.Shop.RestockVariant(ctx, "boot", tc.variant, tc.delta)
		if tc.code != "" {
			if code(err) != tc.code || (tc.field != "" && err.(*shop.Error).Details["field"] != tc.field) {
				t.Fatalf("restock %s: %v, want %s %s", tc.name, err, tc.code, tc.field)
			}
			continue
		}
		if err != nil {
			t.Fatalf("restock %s: %v", tc.name, err)
		}
		for _, v := range p.Variants {
			if v.ID == tc.variant && v.Stock != tc.stock {
				t.Fatalf("restock %s: %+v", tc.name, v)
			}
		}
	}
	env.CheckVariants(t, "boot")
	// A one-variant product restocks without naming it.
	if p, err := env.Shop.Restock(ctx, "shoe", 1); err != nil || p.Stock != 8 {
		t.Fatalf("restock of a one-variant product: %+v %v", p, err)
	}
}

// TestOneOfEachSizeHammer: 1000 shoppers, a product in 12 sizes, max_per_user 1, each shopper
// trying two sizes at once, on the real path. Nobody ends with two units, no size is oversold,
// and Redis and Postgres agree per size and per shopper.
func TestOneOfEachSizeHammer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	const shoppers, sizes, perSize = 1000, 12, 50 // 600 pairs for 1000 shoppers
	env.ProductInSizes(t, "drop", 1, testenv.Sizes(sizes, perSize))
	var ok, limit, sold atomic.Int64
	got := make([][]string, shoppers)
	var mu sync.Mutex
	hammer(shoppers*2, func(i int) {
		user := fmt.Sprintf("shopper-%d", i/2)
		size := fmt.Sprintf("us-%d", (i/2+i%2*5)%sizes+1) // two different sizes per shopper
		r, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: user, ProductID: "drop", VariantID: size, Quantity: 1})
		switch code(err) {
		case "":
			ok.Add(1)
			mu.Lock()
			got[i/2] = append(got[i/2], r.VariantID)
			mu.Unlock()
		case shop.CodeLimitExceeded:
			limit.Add(1)
		case shop.CodeOutOfStock:
			sold.Add(1)
		default:
			t.Errorf("reserve: %v", err)
		}
	})
	for i, vs := range got {
		if len(vs) > 1 {
			t.Errorf("shopper-%d holds %v", i, vs)
		}
	}
	ls := env.CheckVariants(t, "drop")
	var held int64
	for v, l := range ls {
		if l.HeldPG > perSize {
			t.Errorf("size %s oversold: %d held of %d", v, l.HeldPG, perSize)
		}
		held += l.HeldPG
	}
	if held != ok.Load() || ok.Load() > sizes*perSize || ok.Load()+limit.Load()+sold.Load() != 2*shoppers {
		t.Fatalf("held %d, ok %d, limit %d, sold out %d", held, ok.Load(), limit.Load(), sold.Load())
	}
	if ok.Load() < shoppers/2 {
		t.Fatalf("only %d shoppers got a pair", ok.Load())
	}
}

// TestStockMessageCarriesVariants: the live stock snapshot names every variant's available
// units at one version, summing to the total; a gate from before variants is rebuilt before
// it answers a reserve.
func TestStockMessageCarriesVariants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	env.ProductInSizes(t, "shoe", 5, []shop.VariantInput{{ID: "us-9", Name: "9", Stock: 3}, {ID: "us-10", Name: "10", Stock: 38}})
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "u", ProductID: "shoe", VariantID: "us-10", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	m, ok, err := rooms.NewTable(env.Redis).Snapshot(ctx, "shoe")
	if err != nil || !ok || m.Available != 39 || len(m.Variants) != 2 || m.Variants["us-9"] != 3 || m.Variants["us-10"] != 36 {
		t.Fatalf("snapshot %+v %v %v", m, ok, err)
	}

	// A gate as today's code leaves it (no variant list, holds in the old format): the new
	// scripts treat it as absent and rebuild it from Postgres.
	env.Product(t, "tee", 5, 5)
	r, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "u", ProductID: "tee", Quantity: 1})
	if err != nil {
		t.Fatal(err)
	}
	k := stock.KeysFor("tee")
	if err := env.Redis.HDel(ctx, k.Gate, "vs").Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := rooms.NewTable(env.Redis).Snapshot(ctx, "tee"); ok {
		t.Fatal("a gate from before variants answered a snapshot")
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "v", ProductID: "tee", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if err := env.Shop.Release(ctx, "u", r.ID); err != nil {
		t.Fatal(err)
	}
	l := env.CheckVariants(t, "tee")
	if l["default"].Available != 4 || l["default"].HeldPG != 1 {
		t.Fatalf("after the old gate: %+v", l)
	}
}
