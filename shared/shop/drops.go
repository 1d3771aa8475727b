package shop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	"time"
)

// Ticket is a shopper's place in a product's waiting room (API.md, "Drops").
type Ticket struct {
	ProductID string `json:"product_id"`
	// State is waiting, admitted, sold_out or expired.
	State string `json:"state"`
	// Number is the place in line (nil before the opening: the opening shuffles).
	Number *int64 `json:"number"`
	// Serving is how far admission has come: numbers up to it are (or were) admitted.
	Serving int64 `json:"serving"`
	// Ahead is Number - Serving while waiting (nil before the opening).
	Ahead *int64 `json:"ahead"`
	// OpensAt is the product's opening (nil: open from creation).
	OpensAt *time.Time `json:"opens_at"`
	// AdmittedUntil is the end of the admission window once the number was reached.
	AdmittedUntil *time.Time `json:"admitted_until"`
}

// Ticket states.
const (
	TicketWaiting  = "waiting"
	TicketAdmitted = "admitted"
	TicketSoldOut  = "sold_out"
	TicketExpired  = "expired"
)

// QueueStats is a waiting room as the dashboard shows it.
type QueueStats struct {
	Opened   bool  `json:"opened"`
	Joined   int64 `json:"joined"`   // tickets given (before the opening: shoppers in the pre-queue)
	Serving  int64 `json:"serving"`  // numbers up to it were reached
	Admitted int64 `json:"admitted"` // numbers whose admission window runs now
	SoldOut  bool  `json:"sold_out"` // available is 0: serving is paused
}

// QueueCall is one queue.lua call.
type QueueCall struct {
	Op        string // QueueJoin, QueueGet or QueueStats
	ProductID string
	UserID    string
	Now       time.Time
	Seed      string
	Window    time.Duration
	Rate      float64
	Burst     int64
}

// Queue operations (QueueCall.Op).
const (
	QueueJoin  = "join"
	QueueGet   = "get"
	QueueStat  = "stats"
	queueNone  = "none"
	queueNoQ   = "no_queue"
	queueStats = "stats"
)

// QueueResult is what queue.lua answered: Outcome is "ticket", "none", "stats", "no_queue",
// "missing" or "rate_limited".
type QueueResult struct {
	Outcome string
	Ticket  Ticket
	Stats   QueueStats
	Wait    time.Duration
}

// Drops is the Redis side of drops: the waiting room and the shopper's rate.
type Drops interface {
	// Queue runs queue.lua: joins, reads or counts a product's waiting room.
	Queue(ctx context.Context, c QueueCall) (QueueResult, error)
	// TakeToken takes one request from the shopper's token bucket; it returns 0, or how long
	// until a token is there (nothing changed then).
	TakeToken(ctx context.Context, userID string, now time.Time, rate float64, burst int64) (time.Duration, error)
}

// Seed returns a fresh secret random seed for the waiting room's shuffle (crypto/rand).
func Seed() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RateLimited is the 429 of a shopper past their rate; wait is rounded up to whole seconds
// for the Retry-After header (details.retry_after).
func RateLimited(wait time.Duration) *Error {
	secs := int64(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	e := Errorf(CodeRateLimited, "too many requests; try again in %d s", secs)
	e.Details = map[string]any{"retry_after": secs}
	return e
}

// limitRate takes a token from the shopper's bucket, or answers rate_limited.
func (s *Service) limitRate(ctx context.Context, userID string) error {
	if s.ShopperRate <= 0 {
		return nil
	}
	wait, err := s.Gate.TakeToken(ctx, userID, s.now(), s.ShopperRate, s.ShopperBurst)
	if err != nil {
		return err
	}
	if wait > 0 {
		return RateLimited(wait)
	}
	return nil
}

// JoinQueue joins the product's waiting room, or returns the caller's ticket (a ticket whose
// admission ran out is replaced by a new one at the back). A product without a waiting room
// is invalid_state.
func (s *Service) JoinQueue(ctx context.Context, userID, productID string) (Ticket, error) {
	t, err := s.queueTicket(ctx, QueueJoin, userID, productID)
	if err == nil {
		s.changed(ctx, productID) // the broadcaster looks at the queue (and keeps it moving)
	}
	return t, err
}

// QueueTicket returns the caller's ticket; not_found without one.
func (s *Service) QueueTicket(ctx context.Context, userID, productID string) (Ticket, error) {
	return s.queueTicket(ctx, QueueGet, userID, productID)
}

func (s *Service) queueTicket(ctx context.Context, op, userID, productID string) (Ticket, error) {
	if !ValidProductID(productID) {
		return Ticket{}, Invalid("id", "product id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	res, err := s.runQueue(ctx, QueueCall{Op: op, ProductID: productID, UserID: userID})
	if err != nil {
		return Ticket{}, err
	}
	switch res.Outcome {
	case "ticket":
		return res.Ticket, nil
	case queueNone:
		return Ticket{}, Errorf(CodeNotFound, "you have no ticket for this product")
	case GateRateLimited:
		return Ticket{}, RateLimited(res.Wait)
	}
	return Ticket{}, Errorf(CodeInternal, "unexpected queue outcome")
}

// runQueue runs queue.lua, rebuilding a missing gate once; no_queue is invalid_state and an
// unknown product not_found.
func (s *Service) runQueue(ctx context.Context, c QueueCall) (QueueResult, error) {
	for tries := 0; ; tries++ {
		// Only a missing gate retries, and queue.lua answers it before taking a token.
		c.Now, c.Seed, c.Window, c.Rate, c.Burst = s.now(), Seed(), s.AdmissionWindow, s.ShopperRate, s.ShopperBurst
		res, err := s.Gate.Queue(ctx, c)
		if err != nil {
			return QueueResult{}, err
		}
		switch res.Outcome {
		case GateMissing:
			if tries >= 2 {
				return QueueResult{}, Errorf(CodeUnavailable, "the product's gate keeps missing")
			}
			if _, found, err := s.catalogProduct(ctx, c.ProductID); err != nil {
				return QueueResult{}, err
			} else if !found {
				return QueueResult{}, Errorf(CodeNotFound, "no product %q", c.ProductID)
			}
			if err := s.ensureGate(ctx, c.ProductID); err != nil {
				return QueueResult{}, err
			}
			continue
		case queueNoQ:
			return QueueResult{}, Errorf(CodeInvalidState, "this product has no waiting room")
		}
		if res.Outcome == "ticket" || res.Outcome == queueNone {
			res.Ticket.ProductID = c.ProductID
		}
		return res, nil
	}
}

// queueStats reads a product's waiting room for the dashboard (nil without one).
func (s *Service) queueStats(ctx context.Context, productID string) (*QueueStats, error) {
	res, err := s.runQueue(ctx, QueueCall{Op: QueueStat, ProductID: productID})
	if ErrorCode(err) == CodeInvalidState {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &res.Stats, nil
}

// MaxQueueRate is the largest queue_rate an admin may set.
const MaxQueueRate = 10000

// validDrop checks the drop fields of a product input.
func validDrop(in ProductInput) error {
	switch {
	case in.QueueRate < 0 || in.QueueRate > MaxQueueRate:
		return Invalid("queue_rate", "queue_rate must be an integer from 0 to %d", MaxQueueRate)
	case in.OpensAt != nil && in.ClosesAt != nil && !in.ClosesAt.After(*in.OpensAt):
		return Invalid("closes_at", "closes_at must be after opens_at")
	}
	return nil
}

// notOpen is the 409 of a reserve outside the sale window.
func notOpen(p Product, which string) *Error {
	if which == "closes" {
		e := Errorf(CodeNotOpen, "the sale has closed")
		e.Details = map[string]any{"closes_at": p.ClosesAt}
		return e
	}
	e := Errorf(CodeNotOpen, "the sale has not opened yet")
	e.Details = map[string]any{"opens_at": p.OpensAt}
	return e
}

// notAdmitted is the 409 of a reserve without an admitted ticket; ahead < 0 is null.
func notAdmitted(ahead int64) *Error {
	e := Errorf(CodeNotAdmitted, "join the waiting room and wait for your turn")
	if ahead < 0 {
		e.Details = map[string]any{"ahead": nil}
	} else {
		e.Details = map[string]any{"ahead": ahead}
	}
	return e
}

// msUTC returns t in UTC to the millisecond (the gate's resolution), nil for nil.
func msUTC(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Millisecond)
	return &u
}
