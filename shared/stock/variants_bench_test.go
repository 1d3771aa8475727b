package stock_test

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

// reserveBeforeVariants is reserve.lua (with waitroom.lua in front) as it was before variants:
// the baseline of BenchmarkReserveVariants.
//
//go:embed testdata/reserve_before_variants.lua
var reserveBeforeVariants string

// BenchmarkReserveVariants times one reserve.lua round trip (the gate alone, no Postgres), in
// one run: "before" is the script before variants on a one-variant product (today's reserve),
// "one" the new script on a one-variant product, "twelve" the new script on a product in 12
// sizes, each reserve naming the next size. Each iteration runs one of each (interleaved, so
// that a busy machine slows them alike); the medians and their differences are reported
// (ns/op is the three together). `make bench` prints them.
func BenchmarkReserveVariants(b *testing.B) {
	rdb := testenv.Redis(b)
	g := stock.New(rdb)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	sizes := make([]shop.GateVariant, 12)
	for i := range sizes {
		sizes[i] = shop.GateVariant{ID: fmt.Sprintf("us-%d", i+1), Available: 1 << 40}
	}
	for _, p := range []shop.GateState{
		{ProductID: "one", Available: 1 << 40, MaxPerUser: 1 << 50, Gen: 1},
		{ProductID: "twelve", Available: 12 << 40, MaxPerUser: 1 << 50, Gen: 1, Variants: sizes},
	} {
		if _, err := g.Rebuild(ctx, p, now); err != nil {
			b.Fatal(err)
		}
	}
	old := redis.NewScript(reserveBeforeVariants)
	i := 0
	reserve := func(b *testing.B, product, variant string) {
		i++
		a := shop.GateReserve{ProductID: product, VariantID: variant, ID: fmt.Sprintf("r_%d", i), UserID: "alice", Quantity: 1,
			Now: now.Add(time.Second), Deadline: now.Add(time.Hour), Seed: shop.Seed(), Charge: true,
			AdmissionWindow: time.Hour, ShopperRate: 1e9, ShopperBurst: 1 << 40}
		r, err := g.Reserve(ctx, a)
		if err != nil || r.Outcome != shop.GateOK {
			b.Fatal(r, err)
		}
	}
	k := stock.KeysFor("one")
	oldKeys := append([]string{k.Gate, k.Holds, k.Deadlines, k.Users, k.Version, "{p:one}:noidem"}, stock.QueueKeys("one")...)
	oldKeys = append(oldKeys, stock.BucketKey("alice"), "{p:one}:idemlost")
	before := func(b *testing.B) {
		i++
		err := old.Run(ctx, rdb, oldKeys, fmt.Sprintf("r_%d", i), "alice", 1, now.Add(time.Hour).UnixMilli(), "", 0,
			now.Add(time.Second).UnixMilli(), shop.Seed(), time.Hour.Milliseconds(), 1e9, 1<<40, "1").Err()
		if err != nil {
			b.Fatal(err)
		}
	}
	// Interleaved, so that the load of a shared machine falls on the three alike: each
	// iteration runs one of each, and the medians are reported.
	var lat [3][]time.Duration
	calls := []func(*testing.B){before, func(b *testing.B) { reserve(b, "one", "") }, func(b *testing.B) { reserve(b, "twelve", sizes[i%12].ID) }}
	for n := 0; b.Loop(); n++ {
		for j := range 3 {
			c := (n + j) % 3 // rotate who goes first
			t0 := time.Now()
			calls[c](b)
			lat[c] = append(lat[c], time.Since(t0))
		}
	}
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds()) / 1000
	}
	bv, one, twelve := med(lat[0]), med(lat[1]), med(lat[2])
	b.ReportMetric(bv, "before-µs")
	b.ReportMetric(one, "one-µs")
	b.ReportMetric(twelve, "twelve-µs")
	b.ReportMetric(100*(twelve-bv)/bv, "twelve-vs-before-%")
	b.ReportMetric(100*(one-bv)/bv, "one-vs-before-%")
}
