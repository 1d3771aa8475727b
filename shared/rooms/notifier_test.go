package rooms_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lastunit/shared/rooms"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// sink records what a notifier sends; while blocked, sends wait; while failing, they fail.
type sink struct {
	mu      sync.Mutex
	calls   int
	notices []rooms.Notice
	block   chan struct{}
	failing atomic.Bool
}

func (s *sink) send(ctx context.Context, bodies []string) error {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.failing.Load() {
		return errors.New("sqs is down")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	for _, b := range bodies {
		var n rooms.Notice
		if err := json.Unmarshal([]byte(b), &n); err != nil {
			return fmt.Errorf("a notice that is not JSON: %w", err)
		}
		s.notices = append(s.notices, n)
	}
	return nil
}

func (s *sink) count(product string) (calls, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.notices {
		if x.ProductID == product {
			n++
		}
	}
	return s.calls, n
}

// TestNotifierNeverBlocksAndCoalesces: with SQS stuck, StockChanged still returns at once;
// a burst of 10,000 changes becomes a handful of notices, one per product per send, and
// Drain returns once every product changed has been sent.
func TestNotifierNeverBlocksAndCoalesces(t *testing.T) {
	t.Parallel()
	s := &sink{block: make(chan struct{})}
	n := rooms.NewNotifier(s.send, quiet, time.Now)
	defer n.Close()
	start := time.Now()
	for i := range 10_000 {
		n.StockChanged(context.Background(), "hot", []string{"a", "b"}[i%2])
	}
	// SQS is stuck until released below: returning at all proves no call waited for it. The
	// time is only logged (speed belongs to benchmarks).
	t.Logf("10,000 StockChanged calls with SQS stuck took %v", time.Since(start))
	close(s.block)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	calls, hot := s.count("hot")
	_, a := s.count("a")
	if hot < 1 || hot > 3 || a < 1 || a > 3 || calls > 3 {
		t.Fatalf("10,000 changes became %d sends, %d notices of hot, %d of a", calls, hot, a)
	}
}

// TestNotifierRetriesWhenSQSFails: notices a failed send could not deliver are sent later.
func TestNotifierRetriesWhenSQSFails(t *testing.T) {
	t.Parallel()
	s := &sink{}
	s.failing.Store(true)
	n := rooms.NewNotifier(s.send, quiet, time.Now)
	n.SetEvery(5 * time.Millisecond)
	defer n.Close()
	n.StockChanged(context.Background(), "p1")
	time.Sleep(30 * time.Millisecond)
	s.failing.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if _, got := s.count("p1"); got != 1 {
		t.Fatalf("p1 notices after SQS came back: %d", got)
	}
}

// TestShopNotifiesEveryChange: the shop tells the notifier of every change of available
// (reserve, release, expiry, rebuild), and the notices name the product.
func TestShopNotifiesEveryChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	s := &sink{}
	n := rooms.NewNotifier(s.send, quiet, time.Now)
	defer n.Close()
	env.Shop.Notify = n
	drained := func(what string, want int) {
		t.Helper()
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := n.Drain(dctx); err != nil {
			t.Fatal(err)
		}
		if _, got := s.count("p1"); got < want {
			t.Fatalf("%s: %d notices of p1, want at least %d", what, got, want)
		}
	}
	env.Product(t, "p1", 5, 5)
	drained("create", 1)
	r, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "u", ProductID: "p1", Quantity: 2})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * rooms.DefaultEvery)
	drained("reserve", 2)
	if err := env.Shop.Release(ctx, "u", r.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * rooms.DefaultEvery)
	drained("release", 3)
}
