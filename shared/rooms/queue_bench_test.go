package rooms_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"lastunit/shared/rooms"
	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

var benchRuns int

type countPoster struct{ n atomic.Int64 }

func (c *countPoster) Post(context.Context, string, []byte) error { c.n.Add(1); return nil }

// BenchmarkQueueMessage1000 times one waiting-room message to a room of 1000 viewers: the
// claim (queuecast.lua, which also brings the queue up to date), the room's members, and
// 1000 posts through the broadcaster's bounded fan-out, to a poster that only counts (the
// HTTP cost of PostToConnection is what `make bench-fanout` measures). It reports the
// messages per second one broadcaster can send to such a room.
func BenchmarkQueueMessage1000(b *testing.B) {
	ctx := context.Background()
	rdb := testenv.Redis(b)
	g := stock.New(rdb)
	now := testenv.Start
	benchRuns++
	id := fmt.Sprint("qb", benchRuns, "-", time.Now().UnixNano()) // each run of the benchmark has its own product and room
	if _, err := g.Rebuild(ctx, shop.GateState{ProductID: id, Available: 10, MaxPerUser: 1, Gen: 1, QueueRate: 1}, now); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 2000; i++ { // serving grows by one a message: enough for -benchtime up to 2000x
		if _, err := g.Queue(ctx, shop.QueueCall{Op: shop.QueueJoin, ProductID: id, UserID: fmt.Sprint("s", i), Now: now, Seed: "00", Window: time.Minute}); err != nil {
			b.Fatal(err)
		}
	}
	post := &countPoster{}
	br := rooms.NewBroadcaster(rdb, post, quiet)
	clock := &fakeTime{now: now}
	br.Now = clock.Now
	for i := 0; i < 1000; i++ {
		if err := br.Table.Join(ctx, fmt.Sprint("c", i), id, now, now); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	for b.Loop() {
		clock.Advance(time.Second) // serving grows by one: a message is due
		r := br.Broadcast(ctx, []string{id})
		if r[0].Queue != "send" || r[0].Err != nil {
			b.Fatalf("%+v", r[0])
		}
	}
	b.ReportMetric(float64(post.n.Load())/time.Since(start).Seconds(), "posts/s")
}
