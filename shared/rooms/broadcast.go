package rooms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/lua"
	"lastunit/shared/shop"
	"lastunit/shared/stock"
)

var (
	broadcastScript = redis.NewScript(lua.Broadcast)
	queueCastScript = redis.NewScript(lua.QueueCast)
	drawCastScript  = redis.NewScript(lua.DrawCast)
)

// Broadcaster posts products' current available units to the connections in their rooms.
// Under a burst it sends a product's room at most one message per MinInterval (the latest
// value, never an intermediate one it already knows to be stale), and each version at most
// once, however many notices and broadcaster instances there are.
type Broadcaster struct {
	Table *Table
	rdb   redis.UniversalClient
	Post  Poster
	Log   *slog.Logger
	// Now is the clock; Sleep waits (both replaceable in tests).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Parallel bounds the posts in flight at once.
	Parallel int
	// MinInterval is the least time between two broadcasts of one product (default 100 ms:
	// at most 10 messages per viewer per second under a burst).
	MinInterval time.Duration
	// SentTTL is how long a broadcast's marker keeps redelivered notices from sending again.
	SentTTL time.Duration
	// QueueInterval is the least time between two waiting-room messages of one product (1 s).
	QueueInterval time.Duration
	// Again asks for the product to be broadcast once more after delay (a delayed notice on
	// the stock-updates queue), while its waiting room moves; nil: only changes trigger it.
	Again func(ctx context.Context, productID string, delay time.Duration) error
}

// NewBroadcaster returns a broadcaster over the table on rdb, posting with post.
func NewBroadcaster(rdb redis.UniversalClient, post Poster, log *slog.Logger) *Broadcaster {
	return &Broadcaster{
		Table: NewTable(rdb), rdb: rdb, Post: post, Log: log, Now: time.Now, Sleep: sleep,
		Parallel: 64, MinInterval: 100 * time.Millisecond, SentTTL: 2 * time.Second, QueueInterval: time.Second,
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Result is what one product's broadcast did.
type Result struct {
	ProductID string
	// Outcome is "sent", "skipped" (this version went out already), "missing" (no gate: the
	// rebuild notices again) or "failed".
	Outcome   string
	Available int64
	Version   int64
	Viewers   int // connections in the room
	Sent      int // messages posted
	Gone      int // connections that answered GoneException, now removed
	Failed    int // posts that failed otherwise (the viewer's next message or heartbeat heals it)
	// Queue is what the waiting-room step did: "send", "same", "wait", "none" or "failed";
	// Serving is the serving it sent.
	Queue   string
	Serving int64
	// Draw is what the draw step did: "send", "same", "wait", "none" or "failed".
	Draw string
	Err  error
}

// Broadcast sends each product's current value to its room, the products in parallel and at
// most Parallel posts in flight. A product whose value cannot be read has Err set (its
// notices should come back); a post that fails does not fail the product.
func (b *Broadcaster) Broadcast(ctx context.Context, productIDs []string) []Result {
	out := make([]Result, len(productIDs))
	sem := make(chan struct{}, max(1, b.Parallel))
	var wg sync.WaitGroup
	for i, id := range productIDs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = b.one(ctx, id, sem)
		}()
	}
	wg.Wait()
	return out
}

func (b *Broadcaster) one(ctx context.Context, productID string, sem chan struct{}) Result {
	r := Result{ProductID: productID}
	msg, outcome, err := b.claim(ctx, productID)
	if err != nil {
		r.Outcome, r.Err = "failed", err
		return r
	}
	r.Outcome = outcome
	if outcome == "sent" {
		r.Available, r.Version = msg.Available, msg.Version
		if err := b.postAll(ctx, productID, msg.JSON(), sem, &r); err != nil {
			r.Outcome, r.Err = "failed", err
			return r
		}
	}
	if err := b.queue(ctx, productID, sem, &r); err != nil {
		r.Queue, r.Err = "failed", err
	}
	if err := b.draw(ctx, productID, sem, &r); err != nil {
		r.Draw, r.Err = "failed", err
	}
	return r
}

// draw sends a draw's counts when they changed, at most once per QueueInterval (drawcast.lua);
// counts that changed sooner are sent by a look planned with Again (or by the next notice).
func (b *Broadcaster) draw(ctx context.Context, productID string, sem chan struct{}, r *Result) error {
	p := "{p:" + productID + "}:"
	v, err := drawCastScript.Run(ctx, b.rdb, []string{p + "draw", p + "dsent"}, b.Now().UnixMilli(), b.QueueInterval.Milliseconds(), (60 * b.QueueInterval).Milliseconds()).Slice()
	if err != nil {
		return fmt.Errorf("run drawcast.lua for %s: %w", productID, stock.Translate(err))
	}
	r.Draw = lua.Str(v, 0)
	switch r.Draw {
	case "send":
		m := Draw{Type: TypeDraw, ProductID: productID, State: "drawn", Won: lua.Int(v, 1), Waitlisted: lua.Int(v, 2)}
		return b.postAll(ctx, productID, m.JSON(), sem, r)
	case "wait":
		if b.Again != nil {
			if err := b.Again(context.WithoutCancel(ctx), productID, time.Duration(lua.Int(v, 1))*time.Millisecond); err != nil {
				b.Log.Warn("plan the next draw message", "product_id", productID, "err", err.Error())
			}
		}
	}
	return nil
}

// postAll posts data to every connection in the product's room, counting into r.
func (b *Broadcaster) postAll(ctx context.Context, productID string, data []byte, sem chan struct{}, r *Result) error {
	members, err := b.Table.Members(ctx, productID, b.Now())
	if err != nil {
		return err
	}
	r.Viewers = len(members)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, conn := range members {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			mu.Lock()
			r.Failed++
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := b.Post.Post(ctx, conn, data)
			if errors.Is(err, ErrGone) {
				if _, rerr := b.Table.Remove(context.WithoutCancel(ctx), conn); rerr != nil {
					b.Log.Warn("remove gone connection", "connection_id", conn, "err", rerr.Error())
				}
			} else if err != nil {
				b.Log.Warn("post stock", "connection_id", conn, "product_id", productID, "err", err.Error())
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				r.Sent++
			case errors.Is(err, ErrGone):
				r.Gone++
			default:
				r.Failed++
			}
		}()
	}
	wg.Wait()
	return nil
}

// queue sends the product's waiting-room message when serving or the sold-out state changed
// and no other broadcast of it went out in the last QueueInterval (queuecast.lua). While
// tickets wait and admission moves (or the opening is ahead), it asks Again to look at the
// product once more later: serving grows with time, and Lambda has no ticker. One look is
// planned at a time, however many notices arrive.
func (b *Broadcaster) queue(ctx context.Context, productID string, sem chan struct{}, r *Result) error {
	keys := append([]string{stock.KeysFor(productID).Gate}, stock.QueueKeys(productID)...)
	keys = append(keys, "{p:"+productID+"}:qsent")
	v, err := queueCastScript.Run(ctx, b.rdb, keys, b.Now().UnixMilli(), shop.Seed(), b.QueueInterval.Milliseconds(), (10 * b.QueueInterval).Milliseconds()).Slice()
	if err != nil {
		return fmt.Errorf("run queuecast.lua for %s: %w", productID, stock.Translate(err))
	}
	r.Queue = lua.Str(v, 0)
	if r.Queue == "send" {
		r.Serving = lua.Int(v, 1)
		m := Queue{Type: TypeQueue, ProductID: productID, Serving: r.Serving, SoldOut: lua.Int(v, 2) == 1}
		if err := b.postAll(ctx, productID, m.JSON(), sem, r); err != nil {
			return err
		}
	}
	if again := lua.Int(v, 3); again >= 0 && b.Again != nil {
		if err := b.Again(context.WithoutCancel(ctx), productID, time.Duration(again)*time.Millisecond); err != nil {
			// The next touch of the queue plans a look again once this one is overdue.
			b.Log.Warn("plan the next queue message", "product_id", productID, "err", err.Error())
		}
	}
	return nil
}

// claim runs broadcast.lua until it says send, skip or missing, waiting out the interval
// since the product's last broadcast.
func (b *Broadcaster) claim(ctx context.Context, productID string) (Stock, string, error) {
	k := stock.KeysFor(productID)
	keys := []string{k.Gate, k.Version, sentKey(productID)}
	for range 50 {
		v, err := broadcastScript.Run(ctx, b.rdb, keys, b.Now().UnixMilli(), b.MinInterval.Milliseconds(), b.SentTTL.Milliseconds()).Slice()
		if err != nil {
			return Stock{}, "", fmt.Errorf("run broadcast.lua for %s: %w", productID, stock.Translate(err))
		}
		switch v[0] {
		case "send":
			vs := make(map[string]int64, (len(v)-3)/2)
			for i := 3; i+1 < len(v); i += 2 {
				vs[lua.Str(v, i)] = lua.Int(v, i+1)
			}
			return NewStock(productID, lua.Int(v, 1), lua.Int(v, 2), vs), "sent", nil
		case "skip":
			return Stock{}, "skipped", nil
		case "missing":
			return Stock{}, "missing", nil
		}
		wait := min(time.Duration(lua.Int(v, 1))*time.Millisecond, b.MinInterval)
		if err := b.Sleep(ctx, wait); err != nil {
			return Stock{}, "", err
		}
	}
	return Stock{}, "", fmt.Errorf("broadcast of %s: no turn after 50 waits", productID)
}
