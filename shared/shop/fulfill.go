package shop

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MaxAttempts is how many times a fulfillment job is delivered before it is dead-lettered
// (the fulfill queue's maxReceiveCount).
const MaxAttempts = 3

// Fulfill fulfills a paid order once, however often its job is delivered: in one Postgres
// transaction with the order locked, its units leave stock on hand for sold and its holds and
// itself become fulfilled; then the holds leave the Redis gate without changing available.
// Any other status is acknowledged and left alone. attempt is the job's receive count; a
// failure on the last one marks the order as a failed job for the admin.
func (s *Service) Fulfill(ctx context.Context, orderID string, attempt int) error {
	err := s.fulfill(ctx, orderID)
	if err == nil {
		return nil
	}
	msg := err.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	if rerr := s.Store.RecordFailure(context.WithoutCancel(ctx), orderID, msg, attempt >= MaxAttempts, s.now()); rerr != nil {
		s.Log.Error("record fulfillment failure", "order_id", orderID, "err", rerr)
	}
	return err
}

func (s *Service) fulfill(ctx context.Context, orderID string) error {
	if s.Fault != nil {
		if err := s.Fault("fulfill"); err != nil {
			return err
		}
	}
	res, err := s.Store.FulfillOrder(ctx, orderID, s.now())
	if errors.Is(err, ErrNotFound) {
		s.Log.Warn("fulfill job for an unknown order", "order_id", orderID)
		return nil
	}
	if err != nil {
		return err
	}
	if res.Status != OrderPaid || res.RefundRequested {
		return nil // fulfilled already, or cancelled/refunded (or being refunded) meanwhile
	}
	if err := s.fault("fulfill.before_drop"); err != nil {
		return nil // the process "dies" after the commit: the sweep drops the holds from the gate
	}
	if err := s.Gate.Drop(context.WithoutCancel(ctx), res.Holds, s.now()); err != nil {
		// Postgres has it fulfilled; the sweep drops the holds from the gate.
		s.Log.Error("drop fulfilled holds from the gate", "order_id", orderID, "err", err)
	}
	return nil
}

// FulfillJob is the body of a fulfill-order message.
type FulfillJob struct {
	OrderID string `json:"order_id"`
}

// FailedJob is a paid order whose fulfillment ran out of automatic retries.
type FailedJob struct {
	OrderID   string    `json:"order_id"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	FailedAt  time.Time `json:"failed_at"`
}

// FailedJobs lists the failed jobs, oldest first.
func (s *Service) FailedJobs(ctx context.Context) ([]FailedJob, error) {
	orders, err := s.Store.FailedJobs(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := make([]FailedJob, 0, len(orders))
	for _, o := range orders {
		out = append(out, FailedJob{OrderID: o.ID, Attempts: o.Attempts, LastError: o.LastError, FailedAt: *o.FailedAt})
	}
	return out, nil
}

// RetryResult says what a retry did.
type RetryResult struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"` // the order's status
	Queued  bool   `json:"queued"` // a job was sent to the queue
	Message string `json:"message"`
}

// RetryJob queues a paid order's fulfillment again: its dead-lettered job goes back to the
// queue (or a new one is sent if none is there). A fulfilled order needs nothing and says so.
func (s *Service) RetryJob(ctx context.Context, orderID string) (RetryResult, error) {
	o, err := s.orderForAdmin(ctx, orderID)
	if err != nil {
		return RetryResult{}, err
	}
	res := RetryResult{OrderID: o.ID, Status: o.Status}
	switch o.Status {
	case OrderFulfilled:
		res.Message = "the order is fulfilled already; nothing to retry"
		return res, nil
	case OrderPaid:
		if o.RefundRequestedAt != nil {
			return RetryResult{}, stateError(o, "the order is being cancelled and refunded")
		}
	default:
		return RetryResult{}, stateError(o, "only a paid order can be fulfilled")
	}
	found, err := s.Dead.RetryDead(ctx, o.ID)
	if err != nil {
		return RetryResult{}, err
	}
	if !found {
		if err := s.Jobs.EnqueueFulfill(ctx, o.ID); err != nil {
			return RetryResult{}, err
		}
	}
	if err := s.Store.ClearFailed(ctx, []string{o.ID}, s.now()); err != nil {
		return RetryResult{}, err
	}
	res.Queued, res.Message = true, "queued for fulfillment again"
	s.Log.Info("failed job retried", "order_id", o.ID, "from_dead_letters", found)
	return res, nil
}

// CancelJob cancels a failed job in three steps, each durable before the next: the intent to
// refund is recorded on the order (fulfillment refuses it from then on), the payment is
// refunded (idempotency key from the order id), and the order and its holds become cancelled
// with the units back, exactly once. A crash or failure between steps is finished by the
// sweep (or by cancelling again). Cancelling a cancelled order answers with it again; a
// fulfilled order, or a paid one that is not a failed job, is invalid_state.
func (s *Service) CancelJob(ctx context.Context, orderID string) (Order, error) {
	o, err := s.orderForAdmin(ctx, orderID)
	if err != nil {
		return Order{}, err
	}
	if o.Status == OrderCancelled {
		return o, nil
	}
	if o.Status != OrderPaid || (o.FailedAt == nil && o.RefundRequestedAt == nil) {
		return Order{}, stateError(o, "only a failed job can be cancelled")
	}
	if o.PaymentIntentID == nil {
		return Order{}, fmt.Errorf("order %s has no payment intent to refund", o.ID)
	}
	cur, requested, err := s.Store.RequestRefund(ctx, o.ID, s.now())
	if err != nil {
		return Order{}, err
	}
	if !requested {
		if cur.Status == OrderCancelled {
			cur.ClientSecret = nil
			return cur, nil
		}
		// Fulfilled meanwhile, or queued again: it is no longer a failed job.
		return Order{}, stateError(cur, "only a failed job can be cancelled")
	}
	if err := s.fault("cancel.after_request"); err != nil {
		return Order{}, err
	}
	if err := s.finishCancel(ctx, cur, true); err != nil {
		return Order{}, err
	}
	return s.orderForAdmin(ctx, o.ID)
}

// finishCancel does a cancel's last two steps for an order with a refund requested: the refund
// (the same idempotency key however often it runs), then cancelled and the units back. forget
// also deletes the order's dead-lettered jobs (the admin's tools may; a leftover job redriven
// later is acknowledged and ignored by fulfillment).
func (s *Service) finishCancel(ctx context.Context, o Order, forget bool) error {
	if o.PaymentIntentID == nil {
		return fmt.Errorf("order %s has no payment intent to refund", o.ID)
	}
	if err := s.Pay.Refund(ctx, o.ID, *o.PaymentIntentID); err != nil {
		if nerr := s.Store.NoteRefundFailure(context.WithoutCancel(ctx), o.ID, err.Error(), s.now()); nerr != nil {
			s.Log.Warn("note refund failure", "order_id", o.ID, "err", nerr)
		}
		return &Error{Code: CodePaymentProviderError, Message: "the refund failed; the cancel stands and is retried", Err: err}
	}
	if err := s.fault("cancel.after_refund"); err != nil {
		return err
	}
	holds, moved, err := s.Store.FinishCancel(ctx, o.ID, s.now())
	if err != nil {
		return err
	}
	bg := context.WithoutCancel(ctx)
	for _, h := range holds {
		if _, err := s.Gate.Release(bg, GateRelease{ProductID: h.ProductID, ID: h.ID, Deadline: h.ExpiresAt, Count: CountLevels, At: s.now()}); err != nil {
			s.Log.Error("release in gate", "order_id", o.ID, "reservation_id", h.ID, "err", err)
		}
		s.changed(ctx, h.ProductID)
	}
	s.holdsEnded(ctx, holds...)
	if forget && s.Dead != nil {
		if err := s.Dead.ForgetDead(bg, o.ID); err != nil {
			s.Log.Warn("forget dead-lettered job", "order_id", o.ID, "err", err) // fulfill ignores it if redriven
		}
	}
	if moved {
		s.Log.Info("paid order cancelled and refunded", "order_id", o.ID)
	}
	return nil
}

// finishCancels completes the cancels a crash or a failed refund left between their steps:
// every paid order with a refund requested is refunded (idempotently) and cancelled.
func (s *Service) finishCancels(ctx context.Context, rep *SweepReport) error {
	orders, err := s.Store.RefundsDue(ctx, sweepBatch)
	if err != nil {
		return err
	}
	for _, o := range orders {
		if err := s.finishCancel(ctx, o, false); err != nil {
			s.Log.Error("finish a cancel", "order_id", o.ID, "err", err) // the next sweep tries again
			continue
		}
		rep.CancelsFinished++
	}
	return nil
}

// fault calls the Fault hook, if any, at a named step.
func (s *Service) fault(step string) error {
	if s.Fault == nil {
		return nil
	}
	return s.Fault(step)
}

// Redrive moves every dead-lettered job back to the queue.
func (s *Service) Redrive(ctx context.Context) (int, error) {
	ids, err := s.Dead.RedriveDead(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.Store.ClearFailed(ctx, ids, s.now()); err != nil {
		return len(ids), err
	}
	s.Log.Info("dead letters redriven", "moved", len(ids))
	return len(ids), nil
}

// AdminOrders lists orders, newest first, optionally of one status; never with client secrets.
func (s *Service) AdminOrders(ctx context.Context, status string) ([]Order, error) {
	switch status {
	case "", OrderPaymentPending, OrderPaid, OrderFulfilled, OrderExpired, OrderCancelled, OrderRefunded:
	default:
		return nil, Invalid("status", "status must be one of payment_pending, paid, fulfilled, expired, cancelled, refunded")
	}
	orders, err := s.Store.Orders(ctx, status, 500)
	for i := range orders {
		orders[i].ClientSecret = nil
	}
	if orders == nil {
		orders = []Order{}
	}
	return orders, err
}

// JanitorReport says what one janitor run did.
type JanitorReport struct {
	Skipped   bool     `json:"skipped"` // another run holds the lock
	Cancelled []string `json:"cancelled"`
	Failed    []string `json:"failed"`
}

// janitorLease bounds a janitor run's lease: longer than the function's timeout (300 s), so a
// run never outlives it, and short enough that a run that died frees it for the next day's.
const janitorLease = 10 * time.Minute

// Janitor cancels (refund, restock) every failed job older than FailedJobMaxAge. Runs never
// overlap: a run that finds the lock taken does nothing.
func (s *Service) Janitor(ctx context.Context) (JanitorReport, error) {
	var rep JanitorReport
	unlock, ok, err := s.Store.TryLock(ctx, "janitor", s.now(), janitorLease)
	if err != nil {
		return rep, err
	}
	if !ok {
		rep.Skipped = true
		return rep, nil
	}
	defer unlock()
	before := s.now().Add(-s.FailedJobMaxAge)
	orders, err := s.Store.FailedJobs(ctx, &before)
	if err != nil {
		return rep, err
	}
	for _, o := range orders {
		if _, err := s.CancelJob(ctx, o.ID); err != nil {
			s.Log.Error("janitor: cancel failed job", "order_id", o.ID, "err", err)
			rep.Failed = append(rep.Failed, o.ID)
			continue
		}
		rep.Cancelled = append(rep.Cancelled, o.ID)
	}
	return rep, nil
}

func (s *Service) orderForAdmin(ctx context.Context, id string) (Order, error) {
	if !orderIDPattern.MatchString(id) {
		return Order{}, Errorf(CodeNotFound, "no such order")
	}
	o, err := s.Store.Order(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Order{}, Errorf(CodeNotFound, "no such order")
	}
	o.ClientSecret = nil
	return o, err
}

func stateError(o Order, msg string) error {
	e := Errorf(CodeInvalidState, "%s; the order is %s", msg, o.Status)
	e.Details = map[string]any{"status": o.Status}
	return e
}
