package shop

import (
	"context"
	"errors"
	"time"
)

// HandlePaymentEvent applies a verified Stripe event. It returns nil once the effect is
// durable (the fulfillment job is queued), so the webhook can answer 200; an error means
// Stripe must deliver the event again. Duplicates and events out of order never act twice:
// every step is a compare-and-set, and handled event ids are remembered.
func (s *Service) HandlePaymentEvent(ctx context.Context, ev PaymentEvent) error {
	switch ev.Type {
	case EventPaymentSucceeded, EventPaymentFailed, EventPaymentCanceled:
	default:
		return nil // acknowledged and ignored
	}
	seen, err := s.Store.EventSeen(ctx, ev.ID)
	if err != nil || seen {
		return err
	}
	o, err := s.findOrder(ctx, ev)
	if errors.Is(err, ErrNotFound) {
		s.Log.Warn("payment event for an unknown payment intent", "event_id", ev.ID, "payment_intent_id", ev.PaymentIntentID)
		return nil // never retried: it will not become known
	}
	if err != nil {
		return err
	}
	switch ev.Type {
	case EventPaymentSucceeded:
		err = s.paymentSucceeded(ctx, o, ev)
	case EventPaymentCanceled:
		err = s.paymentCanceled(ctx, o)
	case EventPaymentFailed:
		// The order stays payment_pending: the shopper may try again until the deadline.
		s.Log.Info("payment failed", "event_id", ev.ID, "order_id", o.ID)
	}
	if err != nil {
		return err
	}
	return s.Store.RecordEvent(ctx, ev.ID, ev.Type, s.now())
}

// findOrder finds the event's order by its PaymentIntent, or by the order id in the
// PaymentIntent's metadata when checkout died before recording the PaymentIntent.
func (s *Service) findOrder(ctx context.Context, ev PaymentEvent) (Order, error) {
	o, err := s.Store.OrderByPaymentIntent(ctx, ev.PaymentIntentID)
	if !errors.Is(err, ErrNotFound) || !orderIDPattern.MatchString(ev.OrderID) {
		return o, err
	}
	o, err = s.Store.Order(ctx, ev.OrderID)
	if err != nil {
		return Order{}, err
	}
	if o.PaymentIntentID != nil && *o.PaymentIntentID != ev.PaymentIntentID {
		return Order{}, ErrNotFound // the metadata names an order paid by another intent
	}
	return o, nil
}

func (s *Service) paymentSucceeded(ctx context.Context, o Order, ev PaymentEvent) error {
	if o.AmountCents != ev.AmountCents || o.Currency != ev.Currency {
		s.Log.Error("payment does not match its order: refunded", "order_id", o.ID, "event_id", ev.ID,
			"order_amount", o.AmountCents, "paid_amount", ev.AmountCents, "order_currency", o.Currency, "paid_currency", ev.Currency)
		if o.Status != OrderPaymentPending && o.Status != OrderExpired {
			return nil // paid, fulfilled, refunded or cancelled by its own payment
		}
		// The shopper paid, but not this order's total: give the money back and end the order.
		if err := s.Pay.Refund(ctx, o.ID, ev.PaymentIntentID); err != nil {
			return err
		}
		if _, err := s.endOrder(ctx, o.ID, o.Status, OrderRefunded, StatusExpired); err != nil {
			return err
		}
		return s.Store.NoteChecked(ctx, o.ID, true, s.now())
	}
	for range 3 {
		switch o.Status {
		case OrderPaymentPending:
			ok, err := s.Store.MarkPaid(ctx, o.ID, ev.PaymentIntentID, s.now())
			if err != nil {
				return err
			}
			if ok {
				s.Log.Info("order paid", "order_id", o.ID, "event_id", ev.ID)
				return s.Jobs.EnqueueFulfill(ctx, o.ID)
			}
		case OrderPaid:
			// A repeat before the first delivery was recorded: the job may not be queued yet.
			return s.Jobs.EnqueueFulfill(ctx, o.ID)
		case OrderExpired:
			done, err := s.latePayment(ctx, o, ev.PaymentIntentID)
			if done || err != nil {
				return err
			}
		case OrderRefunded:
			// A late payment found sold out: make sure the refund went through (idempotent).
			return s.refunded(ctx, o.ID, ev.PaymentIntentID)
		default:
			return nil // fulfilled or cancelled: nothing left to do
		}
		var err error
		if o, err = s.Store.Order(ctx, o.ID); err != nil {
			return err
		}
	}
	return Errorf(CodeUnavailable, "order status kept changing under the payment event")
}

// latePayment handles a payment that succeeded after its order expired: the order takes its
// units again if they are available (→ paid, then fulfilled), else it is refunded. done is
// false when the order changed under it and the caller should look again.
func (s *Service) latePayment(ctx context.Context, o Order, paymentIntentID string) (done bool, err error) {
	now := s.now()
	deadline := now.Add(s.PaymentWindow)
	take := func() (map[string]int64, string, error) {
		for tries := 0; ; tries++ {
			gens, short, missing, err := s.Gate.Retake(ctx, o.UserID, o.Items, deadline)
			if err != nil || missing == "" || tries == 2 {
				if missing != "" && err == nil {
					err = Errorf(CodeUnavailable, "retake: gate of %s keeps missing", missing)
				}
				return gens, short, err
			}
			if err := s.ensureGate(ctx, missing); err != nil {
				return nil, "", err
			}
		}
	}
	for range 3 {
		res, err := s.Store.RetakeOrder(ctx, o.ID, deadline, s.now(), take)
		if errors.Is(err, ErrMaybeWritten) {
			// The order may be paid with its holds checked out again: giving the units back
			// could oversell. Keeping them loses nothing: if Postgres has it paid, Stripe's retry
			// of this event queues the fulfillment (or the sweep lists it as a failed job); if not,
			// the retry takes the same holds again (retake.lua never takes a hold twice), or the
			// sweep frees them once their deadline passes, as Postgres has them expired.
			s.Log.Warn("late payment: retake outcome unknown, units kept", "order_id", o.ID, "err", err)
			return false, err
		}
		if res.Took && (err != nil || res.Outcome != RetakeDone) {
			s.releaseItems(context.WithoutCancel(ctx), o.Items, deadline) // Postgres did not take them
		}
		if err != nil {
			return false, err
		}
		switch res.Outcome {
		case RetakeDone:
			for _, it := range o.Items {
				s.changed(ctx, it.ProductID)
			}
			s.Log.Info("late payment took its units again", "order_id", o.ID)
			return true, s.Jobs.EnqueueFulfill(ctx, o.ID)
		case RetakeShort, RetakeOverLimit:
			// The order is refunded in Postgres already; if the refund call fails, Stripe's
			// retry of the event refunds it (same idempotency key), and if Stripe gives up,
			// the sweep's reconciliation does.
			if err := s.refunded(ctx, o.ID, paymentIntentID); err != nil {
				return false, err
			}
			why := map[string]string{RetakeShort: "sold out", RetakeOverLimit: "the shopper is at max_per_user"}[res.Outcome]
			s.Log.Info("late payment refunded: "+why, "order_id", o.ID, "product_id", res.Short)
			return true, nil
		case RetakeGone:
			return false, nil
		}
		// RetakeGateChanged: take the units again from the rebuilt gate; a gate Postgres
		// found stale is dropped first, so that it is rebuilt from Postgres.
		if res.Stale != "" {
			if err := s.Gate.Invalidate(context.WithoutCancel(ctx), res.Stale, res.StaleGen+1); err != nil {
				return false, err
			}
		}
	}
	// Failovers and rebuilds all the while: Stripe's retry of the event tries again.
	return false, Errorf(CodeUnavailable, "retake: gates kept changing")
}

// refunded makes sure the refund of an order Postgres has refunded went through, and notes
// it settled: the reconciliation no longer asks Stripe about it.
func (s *Service) refunded(ctx context.Context, orderID, paymentIntentID string) error {
	if err := s.Pay.Refund(ctx, orderID, paymentIntentID); err != nil {
		return err
	}
	return s.Store.NoteChecked(ctx, orderID, true, s.now())
}

// applyMissedPayment applies a payment whose webhook never arrived, read from Stripe.
func (s *Service) applyMissedPayment(ctx context.Context, o Order) {
	ev, status, err := s.Pay.Intent(ctx, *o.PaymentIntentID)
	if err == nil && status == IntentSucceeded {
		err = s.paymentSucceeded(ctx, o, ev)
	}
	if err != nil {
		s.Log.Error("apply a payment the webhook missed", "order_id", o.ID, "err", err)
		return
	}
	s.Log.Warn("applied a payment the webhook missed", "order_id", o.ID, "status", status)
}

// reconcilePayments asks Stripe about the orders that ended without a payment (expired) or
// whose refund may not have gone through (refunded), so that no charge is stranded by a
// webhook that keeps failing or never comes (DESIGN.md invariant 12). It costs Stripe at most
// ReconcileBatch reads, and a refund or a late payment's refund for each, per sweep; an order
// is asked about at most once per ReconcileEvery, least recently asked first, until it is
// settled: its intent canceled, its refund confirmed, or ReconcileWindow (how long Stripe
// retries a webhook) past its end with no payment.
func (s *Service) reconcilePayments(ctx context.Context, rep *SweepReport) error {
	now := s.now()
	orders, err := s.Store.ReconcileDue(ctx, now.Add(-s.ReconcileEvery), s.ReconcileBatch)
	if err != nil {
		return err
	}
	for _, o := range orders {
		settled, err := s.reconcile(ctx, o, now, rep)
		if err != nil {
			s.Log.Error("reconcile an order with stripe", "order_id", o.ID, "status", o.Status, "err", err)
		}
		if err := s.Store.NoteChecked(ctx, o.ID, settled && err == nil, now); err != nil {
			return err
		}
		rep.Reconciled++
	}
	return nil
}

// reconcile settles one order against Stripe and reports whether Stripe has nothing more to
// say about it.
func (s *Service) reconcile(ctx context.Context, o Order, now time.Time, rep *SweepReport) (bool, error) {
	pi := *o.PaymentIntentID
	if o.Status == OrderRefunded {
		// Postgres decided on a refund; the call may have failed and Stripe stopped asking.
		return true, s.Pay.Refund(ctx, o.ID, pi)
	}
	ev, status, err := s.Pay.Intent(ctx, pi)
	switch {
	case err != nil:
		return false, err
	case status == IntentSucceeded:
		// Paid, and the webhook failed or never came: apply it now (the units again, or a
		// refund), exactly as the webhook would have.
		rep.PaymentsReconciled++
		s.Log.Warn("reconciliation found a payment the webhooks never settled", "order_id", o.ID, "payment_intent_id", pi)
		return false, s.paymentSucceeded(ctx, o, ev) // paid or refunded now: no longer asked
	case status == IntentCanceled:
		return true, nil // it can never be paid
	default:
		// Not paid yet; past the window Stripe no longer delivers its webhook, so stop asking.
		return now.After(o.UpdatedAt.Add(s.ReconcileWindow)), nil
	}
}

// paymentCanceled ends a payment_pending order whose PaymentIntent was canceled.
func (s *Service) paymentCanceled(ctx context.Context, o Order) error {
	if o.Status != OrderPaymentPending {
		return nil
	}
	_, err := s.endOrder(ctx, o.ID, OrderPaymentPending, OrderExpired, StatusExpired)
	return err
}

// endOrder moves an order and its checked-out holds to their end state in Postgres, then
// gives the holds' units back in the gate. A crash in between is repaired by the sweep.
func (s *Service) endOrder(ctx context.Context, orderID, from, to, holdStatus string) (bool, error) {
	holds, moved, err := s.Store.EndOrder(ctx, orderID, from, to, holdStatus, s.now())
	if err != nil || !moved {
		return moved, err
	}
	for _, h := range holds {
		if _, err := s.Gate.Release(context.WithoutCancel(ctx), GateRelease{ProductID: h.ProductID, ID: h.ID, Deadline: h.ExpiresAt}); err != nil {
			s.Log.Error("release in gate", "order_id", orderID, "reservation_id", h.ID, "err", err)
		}
		s.changed(ctx, h.ProductID)
	}
	s.holdsEnded(ctx, holds...)
	return true, nil
}

// releaseItems gives back the units of an order's holds that have the given deadline in the
// gate (best effort).
func (s *Service) releaseItems(ctx context.Context, items []OrderItem, deadline time.Time) {
	for _, it := range items {
		if _, err := s.Gate.Release(ctx, GateRelease{ProductID: it.ProductID, ID: it.ReservationID, Deadline: deadline}); err != nil {
			s.Log.Error("release in gate", "reservation_id", it.ReservationID, "err", err)
		}
		s.changed(ctx, it.ProductID)
	}
}

// expirePayments ends payment_pending orders past their deadline: the PaymentIntent is
// canceled first, and only if that worked does the order expire and its units return.
func (s *Service) expirePayments(ctx context.Context, rep *SweepReport) error {
	for {
		orders, err := s.Store.DuePayments(ctx, s.now(), sweepBatch)
		if err != nil {
			return err
		}
		ended := 0
		for _, o := range orders {
			if o.PaymentIntentID != nil {
				err := s.Pay.CancelIntent(ctx, o.ID, *o.PaymentIntentID, s.now())
				if errors.Is(err, ErrAlreadyPaid) {
					// The success webhook is on its way; if it never comes, apply it here.
					if s.now().After(o.PaymentExpiresAt.Add(PaymentGrace)) {
						s.applyMissedPayment(ctx, o)
					}
					continue
				}
				if err != nil {
					s.Log.Error("cancel payment intent", "order_id", o.ID, "err", err)
					continue // the next sweep tries again
				}
			}
			moved, err := s.endOrder(ctx, o.ID, OrderPaymentPending, OrderExpired, StatusExpired)
			if err != nil {
				return err
			}
			if moved {
				rep.OrdersExpired++
				ended++
			}
		}
		if len(orders) < sweepBatch || ended == 0 {
			return nil // what is left waits for Stripe or the next sweep
		}
	}
}
