package stock_test

import (
	"context"
	_ "embed"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

// reserveBeforeDrops is reserve.lua as it was before drops (no window, queue or bucket): the
// baseline of BenchmarkReserveDrops.
//
//go:embed testdata/reserve_before_drops.lua
var reserveBeforeDrops string

// BenchmarkReserveDrops times one reserve.lua round trip (the gate alone, no Postgres):
// "before-drops" is the script before this work on a plain product; "plain" the new script on
// a product with no window or queue and no rate; "rate" with the shopper's token bucket;
// "admitted" on a product with a window and a waiting room, for an admitted shopper (the
// admission check, the window and the bucket in the same round trip); "join" is one
// POST /products/{id}/queue (queue.lua).
func BenchmarkReserveDrops(b *testing.B) {
	rdb := testenv.Redis(b)
	g := stock.New(rdb)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	opens := now.Add(-time.Minute)
	for _, p := range []shop.GateState{
		{ProductID: "plain", Available: 1 << 40, MaxPerUser: 1 << 40, Gen: 1},
		{ProductID: "drop", Available: 1 << 40, MaxPerUser: 1 << 40, Gen: 1, OpensAt: &opens, QueueRate: 10000},
	} {
		if _, err := g.Rebuild(ctx, p, now); err != nil {
			b.Fatal(err)
		}
	}
	// alice is admitted: she joins, and serving passes her number within a millisecond.
	if _, err := g.Queue(ctx, shop.QueueCall{Op: shop.QueueJoin, ProductID: "drop", UserID: "alice", Now: now, Seed: "00", Window: time.Hour}); err != nil {
		b.Fatal(err)
	}
	old := redis.NewScript(reserveBeforeDrops)
	i := 0
	reserve := func(b *testing.B, product string, rate float64) {
		i++
		a := shop.GateReserve{ProductID: product, ID: fmt.Sprintf("r_%d", i), UserID: "alice", Quantity: 1,
			Now: now.Add(time.Second), Deadline: now.Add(time.Hour), Seed: shop.Seed(), Charge: true,
			AdmissionWindow: time.Hour, ShopperRate: rate, ShopperBurst: 1 << 40}
		r, err := g.Reserve(ctx, a)
		if err != nil || r.Outcome != shop.GateOK {
			b.Fatal(r, err)
		}
	}
	b.Run("before-drops", func(b *testing.B) {
		k := stock.KeysFor("plain")
		keys := []string{k.Gate, k.Holds, k.Deadlines, k.Users, k.Version, "{p:plain}:noidem"}
		for b.Loop() {
			i++
			if err := old.Run(ctx, rdb, keys, fmt.Sprintf("r_%d", i), "alice", 1, now.Add(time.Hour).UnixMilli(), "", 0).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			reserve(b, "plain", 0)
		}
	})
	b.Run("rate", func(b *testing.B) {
		for b.Loop() {
			reserve(b, "plain", 1e9)
		}
	})
	b.Run("admitted", func(b *testing.B) {
		for b.Loop() {
			reserve(b, "drop", 1e9)
		}
	})
	b.Run("join", func(b *testing.B) {
		for b.Loop() {
			i++
			c := shop.QueueCall{Op: shop.QueueJoin, ProductID: "drop", UserID: fmt.Sprint("u", i), Now: now.Add(time.Second),
				Seed: shop.Seed(), Window: time.Hour, Rate: 1e9, Burst: 1 << 40}
			if r, err := g.Queue(ctx, c); err != nil || r.Outcome != "ticket" {
				b.Fatal(r, err)
			}
		}
	})
}

// BenchmarkOpeningShuffle times the opening of a waiting room whose pre-queue holds 10,000
// and 100,000 shoppers: the one Lua call that shuffles and numbers them (Redis runs nothing
// else meanwhile).
func BenchmarkOpeningShuffle(b *testing.B) {
	rdb := testenv.Redis(b)
	g := stock.New(rdb)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			opens := now.Add(time.Minute)
			id := fmt.Sprint("open", n, "-", now.UnixNano())
			if _, err := g.Rebuild(ctx, shop.GateState{ProductID: id, Available: 10, MaxPerUser: 1, Gen: 1, OpensAt: &opens, QueueRate: 100}, now); err != nil {
				b.Fatal(err)
			}
			q := stock.QueueKeys(id)
			for b.Loop() {
				b.StopTimer()
				rdb.Del(ctx, q...)
				pipe := rdb.Pipeline()
				for i := 0; i < n; i++ {
					u := fmt.Sprint("u", i)
					pipe.RPush(ctx, q[2], u)
					pipe.HSet(ctx, q[1], u, "0:0")
				}
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				r, err := g.Queue(ctx, shop.QueueCall{Op: shop.QueueGet, ProductID: id, UserID: "u0", Now: opens, Seed: shop.Seed(), Window: time.Minute})
				if err != nil || r.Ticket.Number == nil {
					b.Fatal(r, err)
				}
			}
		})
	}
}
