package stock_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

// BenchmarkReserveCounting times one reserve.lua round trip (the gate alone, where counting
// costs; no Postgres) with the control room's counting on and off, in one run: a granted hold
// ("ok", the most counting writes: the outcome, available, held, the latency sample the call
// carries) and a sold-out answer ("sold-out", a drop's most common one). Each iteration runs the
// four calls (interleaved, rotating who goes first, so that a busy machine slows them alike);
// the medians and the differences are reported. `make bench` prints them (docs/control-room.md).
func BenchmarkReserveCounting(b *testing.B) {
	rdb := testenv.Redis(b)
	on, off := stock.New(rdb), stock.New(rdb)
	off.Counting = false
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	for _, p := range []string{"ok-on", "ok-off"} {
		if _, err := on.Rebuild(ctx, shop.GateState{ProductID: p, Available: 1 << 40, MaxPerUser: 1 << 50, Gen: 1}, now); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range []string{"out-on", "out-off"} {
		if _, err := on.Rebuild(ctx, shop.GateState{ProductID: p, Available: 0, MaxPerUser: 1 << 50, Gen: 1}, now); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	// As shop.Reserve hands them over: every LatencyBatch-th reserve carries the last batch.
	samples := func(i int) map[int]int64 {
		if i%shop.DefaultLatencyBatch != 0 {
			return nil
		}
		h := map[int]int64{}
		for j := range shop.DefaultLatencyBatch {
			h[shop.LatencyBucket(time.Duration(700+(i+j)%600)*time.Microsecond)]++
		}
		return h
	}
	call := func(g *stock.Gate, product, want string) func(*testing.B) {
		return func(b *testing.B) {
			i++
			a := shop.GateReserve{ProductID: product, ID: fmt.Sprintf("r_%d", i), UserID: "alice", Quantity: 1,
				Now: now.Add(time.Duration(i) * time.Millisecond), Deadline: now.Add(time.Hour), Seed: shop.Seed(), Charge: true,
				AdmissionWindow: time.Hour, ShopperRate: 1e9, ShopperBurst: 1 << 40,
				Latencies: samples(i)}
			r, err := g.Reserve(ctx, a)
			if err != nil || r.Outcome != want {
				b.Fatal(r, err)
			}
		}
	}
	calls := []func(*testing.B){
		call(on, "ok-on", shop.GateOK), call(off, "ok-off", shop.GateOK),
		call(on, "out-on", shop.GateOutOfStock), call(off, "out-off", shop.GateOutOfStock),
	}
	lat := make([][]time.Duration, len(calls))
	for n := 0; b.Loop(); n++ {
		for j := range calls {
			c := (n + j) % len(calls)
			t0 := time.Now()
			calls[c](b)
			lat[c] = append(lat[c], time.Since(t0))
		}
	}
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds()) / 1000
	}
	okOn, okOff, outOn, outOff := med(lat[0]), med(lat[1]), med(lat[2]), med(lat[3])
	b.ReportMetric(okOn, "ok-on-µs")
	b.ReportMetric(okOff, "ok-off-µs")
	b.ReportMetric(100*(okOn-okOff)/okOff, "ok-on-vs-off-%")
	b.ReportMetric(outOn, "soldout-on-µs")
	b.ReportMetric(outOff, "soldout-off-µs")
	b.ReportMetric(100*(outOn-outOff)/outOff, "soldout-on-vs-off-%")
}
