package shop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// MaxCartItems is the most holds one checkout may name.
const MaxCartItems = 100

// CheckoutRequest is a shopper's checkout of some or all of their holds.
type CheckoutRequest struct {
	UserID         string
	ReservationIDs []string // empty: every reserved hold of the user
	IdemKey        string
}

// Checkout turns the shopper's holds into an order waiting for payment: the whole cart is
// validated and checked out in one Redis call, the order and its holds are written to
// Postgres in one transaction, and a Stripe PaymentIntent is created for the total. If Stripe
// fails, every change is undone and the answer is payment_provider_error.
func (s *Service) Checkout(ctx context.Context, req CheckoutRequest) (Order, error) {
	if len(req.ReservationIDs) > MaxCartItems {
		return Order{}, Invalid("reservation_ids", "at most %d reservations per checkout", MaxCartItems)
	}
	seen := make(map[string]bool, len(req.ReservationIDs))
	for _, id := range req.ReservationIDs {
		if !holdIDPattern.MatchString(id) {
			return Order{}, Invalid("reservation_ids", "%q is not a reservation id", id)
		}
		if seen[id] {
			return Order{}, Invalid("reservation_ids", "%q is named twice", id)
		}
		seen[id] = true
	}
	if err := s.limitRate(ctx, req.UserID); err != nil {
		return Order{}, err
	}
	if req.IdemKey == "" {
		return s.checkout(ctx, req)
	}
	if !ValidIdempotencyKey(req.IdemKey) {
		return Order{}, Invalid("Idempotency-Key", "Idempotency-Key must be 1 to 255 visible ASCII characters")
	}
	ids := slices.Clone(req.ReservationIDs)
	sort.Strings(ids)
	hash := requestHash("POST /checkout", fmt.Sprint(ids))
	// The stored replay never holds the client secret (it would sit in idempotency_keys for
	// a day): the first answer gets the fresh one, a replay the order row's (see replaySecret).
	var out Order
	var fresh *string
	err := s.idempotent(ctx, req.UserID, req.IdemKey, hash, &out, func() (any, error) {
		o, err := s.checkout(ctx, req)
		fresh, o.ClientSecret = o.ClientSecret, nil
		return o, err
	})
	if err != nil {
		return Order{}, err
	}
	for i := range out.Items {
		if out.Items[i].VariantID == "" {
			out.Items[i].VariantID = DefaultVariant // an answer stored before variants
		}
	}
	if fresh != nil {
		out.ClientSecret = fresh
		return out, nil
	}
	return out, s.replaySecret(ctx, req.UserID, &out)
}

// replaySecret gives a replayed checkout answer its client secret back, read from the order
// row: the row keeps it only while the order is payment_pending (a CHECK says so), and the
// idempotency record is the shopper's own, so only the owner gets it, and only while it can
// still pay. Reading the row (not Stripe) costs no call to the provider and cannot hand out
// the secret of an order that has moved on.
func (s *Service) replaySecret(ctx context.Context, userID string, o *Order) error {
	o.ClientSecret = nil
	cur, err := s.Store.Order(ctx, o.ID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.UserID == userID && cur.Status == OrderPaymentPending {
		o.ClientSecret = cur.ClientSecret
	}
	return nil
}

// idempotent runs fn once per (user, key): a repeat with the same request answers with the
// first success decoded into out, a repeat with another request is idempotency_conflict,
// and a repeat while the first is running waits for it. A failed fn stores nothing.
func (s *Service) idempotent(ctx context.Context, userID, key, hash string, out any, fn func() (any, error)) error {
	giveUp := time.Now().Add(replayWait)
	for {
		now := s.now()
		rec, claimed, err := s.Store.ClaimIdem(ctx, userID, key, hash, now, now.Add(-time.Minute))
		if err != nil {
			return err
		}
		if !claimed {
			switch {
			case rec.RequestHash != hash:
				return Errorf(CodeIdempotencyConflict, "this Idempotency-Key was used with another request")
			case rec.Status == 0:
				if time.Now().After(giveUp) {
					return Errorf(CodeUnavailable, "the first request with this Idempotency-Key is still in progress")
				}
				sleep(ctx, 20*time.Millisecond)
				continue
			default:
				if err := json.Unmarshal(rec.Body, out); err != nil {
					return fmt.Errorf("decode stored response: %w", err)
				}
				return nil
			}
		}
		v, err := fn()
		bg := context.WithoutCancel(ctx)
		if err != nil {
			if derr := s.Store.DropIdem(bg, userID, key); derr != nil {
				s.Log.Error("drop idempotency record", "user", userID, "err", derr)
			}
			return err
		}
		body, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode response: %w", err)
		}
		if err := s.Store.CompleteIdem(bg, userID, key, 201, body); err != nil {
			s.Log.Error("complete idempotency record", "user", userID, "err", err)
		}
		return json.Unmarshal(body, out)
	}
}

func (s *Service) checkout(ctx context.Context, req CheckoutRequest) (Order, error) {
	now := s.now()
	holds, err := s.Store.CartHolds(ctx, req.UserID, req.ReservationIDs, now)
	if err != nil {
		return Order{}, err
	}
	if len(req.ReservationIDs) == 0 && len(holds) == 0 {
		return Order{}, Invalid("reservation_ids", "there is no reserved hold to check out")
	}
	var failed []string
	byID := make(map[string]CartHold, len(holds))
	for _, h := range holds {
		byID[h.ID] = h
	}
	for _, id := range req.ReservationIDs {
		if h, ok := byID[id]; !ok || h.Status != StatusReserved || !h.ExpiresAt.After(now) {
			failed = append(failed, id)
		}
	}
	if len(failed) > 0 {
		return Order{}, notHeld(failed)
	}
	order := Order{
		ID: NewID("o_"), UserID: req.UserID, Status: OrderPaymentPending, Currency: holds[0].Currency,
		PaymentExpiresAt: now.Add(s.PaymentWindow), CreatedAt: now, UpdatedAt: now,
	}
	resv := make([]Reservation, len(holds))
	for i, h := range holds {
		if h.Currency != order.Currency {
			return Order{}, Invalid("reservation_ids", "one order takes one currency; this cart has %s and %s", order.Currency, h.Currency)
		}
		order.AmountCents += h.Quantity * h.UnitPriceCents
		order.Items = append(order.Items, OrderItem{ReservationID: h.ID, ProductID: h.ProductID, VariantID: h.VariantID, Quantity: h.Quantity, UnitPriceCents: h.UnitPriceCents, HoldExpiresAt: h.ExpiresAt})
		resv[i] = h.Reservation
	}

	for tries := 0; ; tries++ {
		failed, missing, err := s.Gate.Checkout(ctx, req.UserID, resv, now, order.PaymentExpiresAt)
		if err != nil {
			// The script may have run though the answer was lost: put the holds back (a hold
			// no other checkout can have taken while it is marked checked out).
			if uerr := s.Gate.Uncheckout(context.WithoutCancel(ctx), order.Items); uerr != nil {
				s.Log.Error("uncheckout after a lost answer", "order_id", order.ID, "err", uerr)
			}
			return Order{}, err
		}
		if missing != "" && tries < 3 {
			if err := s.ensureGate(ctx, missing); err != nil {
				return Order{}, err
			}
			continue
		}
		if len(failed) > 0 || missing != "" {
			return Order{}, notHeld(failed)
		}
		break
	}
	if s.Fault != nil {
		if err := s.Fault("checkout.before_order"); err != nil {
			return Order{}, err // the process "dies": the sweep frees the holds at their deadline
		}
	}
	bg := context.WithoutCancel(ctx)
	failed, err = s.Store.CreateOrder(ctx, order, s.now())
	if err != nil || len(failed) > 0 {
		if uerr := s.Gate.Uncheckout(bg, order.Items); uerr != nil {
			s.Log.Error("uncheckout", "order_id", order.ID, "err", uerr)
		}
		if err != nil {
			return Order{}, err
		}
		return Order{}, notHeld(failed)
	}
	if s.Fault != nil {
		if err := s.Fault("checkout.before_payment"); err != nil {
			return Order{}, err // the process "dies": the payment deadline sweep ends the order
		}
	}
	pi, secret, err := s.Pay.CreateIntent(ctx, order.ID, order.AmountCents, order.Currency)
	if err == nil {
		err = s.Store.AttachPayment(ctx, order.ID, pi, secret, s.now())
		if err != nil {
			if cerr := s.Pay.CancelIntent(bg, order.ID, pi, s.now()); cerr != nil {
				s.Log.Error("cancel unrecorded payment intent", "order_id", order.ID, "payment_intent_id", pi, "err", cerr)
			}
		}
	}
	if err != nil {
		if cerr := s.undoCheckout(bg, order.ID); cerr != nil {
			s.Log.Error("undo checkout", "order_id", order.ID, "err", cerr)
		}
		if ErrorCode(err) == CodeUnavailable {
			return Order{}, err
		}
		return Order{}, &Error{Code: CodePaymentProviderError, Message: "the payment provider failed; your holds are kept, try again", Err: err}
	}
	order.PaymentIntentID, order.ClientSecret = &pi, &secret
	for _, id := range orderProducts(order) {
		s.figure(id, FigureCheckedOut, 1) // counted in Redis by checkout.lua
	}
	return order, nil
}

// undoCheckout is checkout's compensation: holds back to reserved with their original
// deadlines in Postgres, then in the gate; the order is deleted.
func (s *Service) undoCheckout(ctx context.Context, orderID string) error {
	items, err := s.Store.UndoCheckout(ctx, orderID, s.now())
	if err != nil {
		return err
	}
	return s.Gate.Uncheckout(ctx, items)
}

func notHeld(ids []string) error {
	if ids == nil {
		ids = []string{}
	}
	e := Errorf(CodeReservationExpired, "some reservations are no longer held")
	e.Details = map[string]any{"reservation_ids": ids}
	return e
}

// orderIDPattern is the shape of the ids NewID("o_") makes.
var orderIDPattern = idPattern("o_")

// GetOrder returns an order to its owner or an admin; anyone else gets not_found. Only the
// owner sees the client secret, and only while the order waits for payment.
func (s *Service) GetOrder(ctx context.Context, userID string, admin bool, id string) (Order, error) {
	if !orderIDPattern.MatchString(id) {
		return Order{}, Errorf(CodeNotFound, "no such order")
	}
	o, err := s.Store.Order(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && o.UserID != userID && !admin) {
		return Order{}, Errorf(CodeNotFound, "no such order")
	}
	if err != nil {
		return Order{}, err
	}
	if o.UserID != userID || o.Status != OrderPaymentPending {
		o.ClientSecret = nil
	}
	return o, nil
}
