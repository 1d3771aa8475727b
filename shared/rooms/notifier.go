package rooms

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"sync"
	"time"

	"lastunit/shared/shop"
)

// Notice is the small message a stock change puts on the stock-updates queue: which product
// changed, and when this process noticed it (ms since the epoch, for the broadcaster's log).
// It carries no count: the broadcaster reads the current one.
type Notice struct {
	ProductID string `json:"product_id"`
	At        int64  `json:"at"`
}

// SendFunc sends message bodies to the stock-updates queue (in batches of up to 10 per call
// to SQS); an error means none of them may have arrived.
type SendFunc func(ctx context.Context, bodies []string) error

// Notifier implements shop.Notifier: StockChanged only adds the products to a set and wakes a
// background goroutine, which sends one notice per product and then waits Every before it
// sends again, so a burst of changes in one process becomes at most one notice per product per
// Every. It never blocks the caller. In Lambda, where the process is frozen once the response
// is sent, the function's handler is wrapped (lambdaext) so that the environment is not frozen
// before Drain has emptied the set.
type Notifier struct {
	send SendFunc
	log  *slog.Logger
	now  func() time.Time
	// Every is the least time between two sends of this process (the coalescing window).
	every   time.Duration
	timeout time.Duration

	mu       sync.Mutex
	pending  map[string]int64 // product id -> when last noticed (ms)
	inflight bool
	idle     chan struct{} // closed and replaced whenever a send ends
	kick     chan struct{}
	hurry    chan struct{}
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

var _ shop.Notifier = (*Notifier)(nil)

// DefaultEvery is the coalescing window of NewNotifier: 50 ms, so one process sends at most
// 20 notices per product per second, and a change waits at most 50 ms for its notice.
const DefaultEvery = 50 * time.Millisecond

// NewNotifier starts a notifier that sends with send; Close stops it.
func NewNotifier(send SendFunc, log *slog.Logger, now func() time.Time) *Notifier {
	n := &Notifier{
		send: send, log: log, now: now, every: DefaultEvery, timeout: 5 * time.Second,
		pending: map[string]int64{}, idle: make(chan struct{}),
		kick: make(chan struct{}, 1), hurry: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go n.loop()
	return n
}

// SetEvery changes the coalescing window (before the first change).
func (n *Notifier) SetEvery(d time.Duration) { n.every = d }

// StockChanged records that products' available units changed. It never blocks.
func (n *Notifier) StockChanged(_ context.Context, productIDs ...string) {
	at := n.now().UnixMilli()
	n.mu.Lock()
	for _, id := range productIDs {
		n.pending[id] = at
	}
	n.mu.Unlock()
	signal(n.kick)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Drain sends what is pending now, without waiting out the window, and returns once nothing
// is pending or being sent, or when ctx ends (with its error).
func (n *Notifier) Drain(ctx context.Context) error {
	for {
		n.mu.Lock()
		if len(n.pending) == 0 && !n.inflight {
			n.mu.Unlock()
			return nil
		}
		idle := n.idle
		n.mu.Unlock()
		signal(n.hurry)
		signal(n.kick)
		select {
		case <-idle:
		case <-n.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close sends what is pending (for up to 5 s) and stops the background goroutine.
func (n *Notifier) Close() {
	n.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Drain(ctx) //nolint:errcheck // best effort on the way out
		close(n.stop)
		<-n.done
	})
}

func (n *Notifier) loop() {
	defer close(n.done)
	for {
		select {
		case <-n.stop:
			return
		case <-n.kick:
		}
		n.mu.Lock()
		batch := n.pending
		n.pending = map[string]int64{}
		n.inflight = len(batch) > 0
		n.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		failed := n.flush(batch)
		n.mu.Lock()
		if failed {
			for id, at := range batch {
				if _, newer := n.pending[id]; !newer {
					n.pending[id] = at
				}
			}
		}
		n.inflight = false
		close(n.idle)
		n.idle = make(chan struct{})
		again := len(n.pending) > 0
		n.mu.Unlock()
		wait := n.every
		if failed {
			wait = 10 * n.every // SQS is down: do not hammer it
		}
		t := time.NewTimer(wait)
		select {
		case <-n.stop:
			t.Stop()
			return
		case <-n.hurry:
		case <-t.C:
		}
		t.Stop()
		if again || failed {
			signal(n.kick)
		}
	}
}

// flush sends one notice per product; it reports whether the send failed.
func (n *Notifier) flush(batch map[string]int64) bool {
	ids := make([]string, 0, len(batch))
	for id := range batch {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	bodies := make([]string, len(ids))
	for i, id := range ids {
		b, _ := json.Marshal(Notice{ProductID: id, At: batch[id]})
		bodies[i] = string(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.timeout)
	defer cancel()
	start := time.Now()
	if err := n.send(ctx, bodies); err != nil {
		n.log.Error("stock notices", "products", len(ids), "err", err.Error(), "ms", time.Since(start).Milliseconds())
		return true
	}
	return false
}
