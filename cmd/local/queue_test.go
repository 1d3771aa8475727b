package main

import (
	"fmt"
	"testing"
	"time"

	"lastunit/shared/rooms"
	"lastunit/shared/testenv"
)

// TestQueueMessagesOverWebSocket: a viewer of a product with a waiting room gets "queue"
// messages over the real WebSocket as serving grows with time, with nobody touching the
// queue after the joins (the broadcaster schedules itself with delayed notices on the
// stock-updates queue), at most one a second, and the sold-out state when the last unit goes.
func TestQueueMessagesOverWebSocket(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Shop.Now = time.Now
	srv, _ := startLiveServer(t, env)
	admin := bearer(t, "ada", "admin")
	if r := call(t, srv, "PUT", "/admin/products/wq", admin, `{"name":"wq","price_cents":100,"currency":"usd","stock":1,"max_per_user":1,"queue_rate":2}`); r.status != 200 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	v := dial(t, srv, "")
	v.subscribe("wq")
	for i := 0; i < 8; i++ {
		if r := call(t, srv, "POST", "/products/wq/queue", bearer(t, fmt.Sprint("s", i)), ""); r.status != 200 {
			t.Fatalf("join: %d %s", r.status, r.body)
		}
	}
	var last wsMsg
	deadline := time.Now().Add(20 * time.Second)
	for last.Serving < 6 && time.Now().Before(deadline) {
		m := v.next(5 * time.Second)
		if m.Type == rooms.TypeQueue {
			if !last.at.IsZero() && m.at.Sub(last.at) < 900*time.Millisecond {
				t.Logf("two queue messages %s apart (coalescing allows one a second; delivery can bunch them)", m.at.Sub(last.at))
			}
			if m.Serving < last.Serving || m.SoldOut {
				t.Fatalf("queue message %+v after %+v", m, last)
			}
			last = m
		}
	}
	if last.Serving < 6 {
		t.Fatalf("serving reached only %d in 20 s at 2 per second", last.Serving)
	}
	// The first in line buys the only unit: the room hears sold out.
	for i := 0; i < 8; i++ {
		r := call(t, srv, "POST", "/reservations", bearer(t, fmt.Sprint("s", i)), `{"product_id":"wq"}`)
		if r.status == 201 {
			break
		}
	}
	for time.Now().Before(deadline.Add(10 * time.Second)) {
		if m := v.next(5 * time.Second); m.Type == rooms.TypeQueue && m.SoldOut {
			return
		}
	}
	t.Fatal("no sold-out queue message")
}
