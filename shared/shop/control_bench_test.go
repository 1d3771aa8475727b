package shop_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

// BenchmarkReserveCountingFull times the whole reserve as the shopper's request runs it
// (shop.Reserve: the gate script, then the hold's insert in Postgres) with the control room's
// counting on and off, in one run: two services over the same Postgres and Redis whose gates
// differ only in Counting. Each iteration reserves once with each (interleaved, rotating who
// goes first); the medians and their difference are reported. `make bench` prints them
// beside BenchmarkReserveCounting, the gate's round trip alone (docs/control-room.md).
func BenchmarkReserveCountingFull(b *testing.B) {
	env := testenv.NewEnv(b)
	off := stock.New(env.Redis)
	off.Counting = false
	svcOff := shop.NewService(env.Shop.Store, off)
	svcOff.Now, svcOff.Log, svcOff.ShopperRate = env.Shop.Now, env.Shop.Log, 0
	for _, p := range []string{"full-on", "full-off"} {
		env.Product(b, p, 1_000_000_000, 1_000_000_000)
	}
	svcs := []*shop.Service{env.Shop, svcOff}
	products := []string{"full-on", "full-off"}
	var lat [2][]time.Duration
	for n := 0; b.Loop(); n++ {
		for j := range 2 {
			c := (n + j) % 2
			t0 := time.Now()
			if _, err := svcs[c].Reserve(ctx, shop.ReserveRequest{UserID: fmt.Sprintf("u%d", n%1000), ProductID: products[c], Quantity: 1}); err != nil {
				b.Fatal(err)
			}
			lat[c] = append(lat[c], time.Since(t0))
		}
	}
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds()) / 1000
	}
	on, offMed := med(lat[0]), med(lat[1])
	b.ReportMetric(on, "on-µs")
	b.ReportMetric(offMed, "off-µs")
	b.ReportMetric(100*(on-offMed)/offMed, "on-vs-off-%")
}
