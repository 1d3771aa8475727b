package stock_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

// chattyCheckout is the seed article's "chatty" checkout: the same checks as checkout.lua,
// one Redis round trip per read and per write, per item. It exists only as the baseline.
func chattyCheckout(ctx context.Context, rdb *redis.Client, user string, holds []shop.Reservation, now, deadline time.Time) ([]string, error) {
	var failed []string
	for _, h := range holds {
		k := stock.KeysFor(h.ProductID)
		if n, err := rdb.Exists(ctx, k.Gate).Result(); err != nil || n == 0 {
			return nil, fmt.Errorf("gate %s: %v", h.ProductID, err)
		}
		v, err := rdb.HGet(ctx, k.Holds, h.ID).Result()
		if err != nil {
			failed = append(failed, h.ID)
			continue
		}
		parts := strings.SplitN(v, ":", 4)
		dl, _ := strconv.ParseInt(parts[1], 10, 64)
		if parts[3] != user || parts[2] != "reserved" || dl <= now.UnixMilli() {
			failed = append(failed, h.ID)
		}
	}
	if len(failed) > 0 {
		return failed, nil
	}
	for _, h := range holds {
		k := stock.KeysFor(h.ProductID)
		v := fmt.Sprintf("%d:%d:checked_out:%s", h.Quantity, deadline.UnixMilli(), user)
		if err := rdb.HSet(ctx, k.Holds, h.ID, v).Err(); err != nil {
			return nil, err
		}
		if err := rdb.ZAdd(ctx, k.Deadlines, redis.Z{Score: float64(deadline.UnixMilli()), Member: h.ID}).Err(); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// BenchmarkCheckout20 checks out a 20-item cart (20 products, one hold each) in Redis: with
// checkout.lua (one round trip) and with the chatty per-item baseline. `make bench` prints
// the ratio of the two.
func BenchmarkCheckout20(b *testing.B) {
	rdb := testenv.Redis(b)
	g := stock.New(rdb)
	ctx := context.Background()
	now := time.Now()
	var holds []shop.Reservation
	for i := 0; i < 20; i++ {
		p := fmt.Sprintf("bench-%02d", i)
		if _, err := g.Rebuild(ctx, shop.GateState{ProductID: p, Available: 1_000_000, MaxPerUser: 1_000_000, Gen: 1}, now); err != nil {
			b.Fatal(err)
		}
		holds = append(holds, shop.Reservation{ID: fmt.Sprintf("r_%02d", i), ProductID: p, Quantity: 1})
	}
	reset := func() {
		for _, h := range holds {
			k := stock.KeysFor(h.ProductID)
			rdb.HSet(ctx, k.Holds, h.ID, fmt.Sprintf("1:%d:reserved:alice", now.Add(time.Hour).UnixMilli()))
		}
	}
	b.Run("script", func(b *testing.B) {
		reset()
		for b.Loop() {
			b.StopTimer()
			reset()
			b.StartTimer()
			if failed, _, err := g.Checkout(ctx, "alice", holds, now, now.Add(15*time.Minute)); err != nil || len(failed) > 0 {
				b.Fatal(err, failed)
			}
		}
	})
	b.Run("chatty", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			reset()
			b.StartTimer()
			if failed, err := chattyCheckout(ctx, rdb, "alice", holds, now, now.Add(15*time.Minute)); err != nil || len(failed) > 0 {
				b.Fatal(err, failed)
			}
		}
	})
}
