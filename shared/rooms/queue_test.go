package rooms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"lastunit/shared/rooms"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// rawPoster records every message posted, decoded as the queue message.
type rawPoster struct {
	mu    sync.Mutex
	queue []rooms.Queue
}

func (p *rawPoster) Post(_ context.Context, _ string, data []byte) error {
	var m rooms.Queue
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.Type == rooms.TypeQueue {
		p.queue = append(p.queue, m)
	}
	return nil
}

func (p *rawPoster) sent() []rooms.Queue {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]rooms.Queue(nil), p.queue...)
}

// TestQueueMessages: a waiting room's viewers get {"type":"queue"} when serving or the sold-out
// state changes, at most one per second, nothing before the opening or when nothing changed;
// while tickets wait (or the opening is ahead) the broadcaster plans one look at a time (no
// ticker needed), and it stops once nobody waits or the product is sold out.
func TestQueueMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	opens := t0.Add(time.Minute)
	if _, err := env.Shop.UpsertProduct(ctx, "qm", shop.ProductInput{Name: "qm", PriceCents: 1, Currency: "usd", Stock: 1, MaxPerUser: 1, OpensAt: &opens, QueueRate: 2}); err != nil {
		t.Fatal(err)
	}
	post := &rawPoster{}
	b := rooms.NewBroadcaster(env.Redis, post, quiet)
	b.Now = env.Clock.Now
	var again []string
	b.Again = func(_ context.Context, id string, d time.Duration) error {
		again = append(again, fmt.Sprint(id, "+", d))
		return nil
	}
	if err := b.Table.Join(ctx, "v", "qm", t0, t0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := env.Shop.JoinQueue(ctx, fmt.Sprint("s", i), "qm"); err != nil {
			t.Fatal(err)
		}
	}
	step := func(name string, advance time.Duration, queue string, messages, agains int) {
		t.Helper()
		env.Clock.Advance(advance)
		res := b.Broadcast(ctx, []string{"qm"})
		if len(res) != 1 || res[0].Err != nil || res[0].Queue != queue {
			t.Fatalf("%s: %+v", name, res)
		}
		if got := post.sent(); len(got) != messages {
			t.Fatalf("%s: %d queue messages, want %d: %+v", name, len(got), messages, got)
		}
		if len(again) != agains {
			t.Fatalf("%s: asked to look again %d times, want %d", name, len(again), agains)
		}
	}
	step("before the opening", 0, "none", 0, 1)
	if again[0] != "qm+1m0s" {
		t.Fatalf("before the opening it plans %v, want a look at the opening", again)
	}
	step("a second after the opening", time.Minute+time.Second, "send", 1, 2)
	step("at once again", 0, "wait", 1, 2) // the look planned a second ahead stands
	step("0.4 s later", 400*time.Millisecond, "wait", 1, 2)
	step("1.1 s after the last", 700*time.Millisecond, "send", 2, 3)
	if m := post.sent()[1]; m.ProductID != "qm" || m.Serving != 4 || m.SoldOut {
		t.Fatalf("message %+v", m)
	}
	step("everyone admitted", time.Second, "send", 3, 3)
	step("nothing changed", time.Second, "same", 3, 3)
	var first string
	for i := 0; i < 5 && first == ""; i++ {
		if tk, _ := env.Shop.QueueTicket(ctx, fmt.Sprint("s", i), "qm"); tk.Number != nil && *tk.Number == 1 {
			first = fmt.Sprint("s", i)
		}
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: first, ProductID: "qm", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	step("sold out", time.Second, "send", 4, 3)
	if m := post.sent()[3]; !m.SoldOut || m.Serving != 5 {
		t.Fatalf("sold-out message %+v", m)
	}
}
