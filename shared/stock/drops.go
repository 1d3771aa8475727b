package stock

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/lua"
	"lastunit/shared/shop"
)

var (
	queueScript     = redis.NewScript(lua.Queue)
	rateLimitScript = redis.NewScript(lua.RateLimit)
)

// QueueKeys are the keys of a product's waiting room (waitroom.lua): state, tickets,
// pre-queue and progress breakpoints, all in the slot {p:id}.
func QueueKeys(id string) []string {
	p := "{p:" + id + "}:"
	return []string{p + "q", p + "qt", p + "qpre", p + "qseg"}
}

// BucketKey is a shopper's token bucket (one per shopper, for every product and route).
func BucketKey(userID string) string { return "{s:" + userID + "}:rate" }

// Queue runs queue.lua.
func (g *Gate) Queue(ctx context.Context, c shop.QueueCall) (shop.QueueResult, error) {
	keys := append([]string{KeysFor(c.ProductID).Gate}, QueueKeys(c.ProductID)...)
	bucket := BucketKey(c.UserID)
	if c.Op != shop.QueueJoin {
		bucket = keys[1] // read only: a key of the product's slot, never written as a bucket
	}
	keys = append(keys, bucket, MetricKey(c.ProductID, c.Now.Unix()))
	v, err := queueScript.Run(ctx, g.rdb, keys, c.Op, c.UserID, ms(c.Now), c.Seed, c.Window.Milliseconds(), c.Rate, c.Burst, g.countFlag()).Slice()
	if err != nil {
		return shop.QueueResult{}, fmt.Errorf("run queue.lua: %w", Translate(err))
	}
	r := shop.QueueResult{Outcome: lua.Str(v, 0)}
	switch r.Outcome {
	case "ticket":
		t := shop.Ticket{State: lua.Str(v, 1), Serving: lua.Int(v, 4)}
		t.Number, t.Ahead = optInt(lua.Int(v, 2)), optInt(lua.Int(v, 3))
		t.AdmittedUntil, t.OpensAt = optTime(lua.Int(v, 5)), optTime(lua.Int(v, 6))
		r.Ticket = t
	case "none":
		r.Ticket = shop.Ticket{Serving: lua.Int(v, 1), OpensAt: optTime(lua.Int(v, 2))}
	case "stats":
		r.Stats = shop.QueueStats{Opened: lua.Int(v, 1) == 1, Joined: lua.Int(v, 2), Serving: lua.Int(v, 3),
			Admitted: lua.Int(v, 4), SoldOut: lua.Int(v, 5) == 1}
	case shop.GateRateLimited:
		r.Wait = time.Duration(lua.Int(v, 1)) * time.Millisecond
	}
	return r, nil
}

// TakeToken runs ratelimit.lua: one request from the shopper's bucket.
func (g *Gate) TakeToken(ctx context.Context, userID string, now time.Time, rate float64, burst int64) (time.Duration, error) {
	n, err := rateLimitScript.Run(ctx, g.rdb, []string{BucketKey(userID)}, ms(now), rate, burst).Int64()
	if err != nil {
		return 0, fmt.Errorf("run ratelimit.lua: %w", Translate(err))
	}
	return time.Duration(n) * time.Millisecond, nil
}

func optInt(n int64) *int64 {
	if n < 0 {
		return nil
	}
	return &n
}

func optTime(msec int64) *time.Time {
	if msec < 0 {
		return nil
	}
	t := time.UnixMilli(msec).UTC()
	return &t
}
