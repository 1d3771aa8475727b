// Package payment is lastunit's Stripe adapter (stripe-go v79): PaymentIntents with
// idempotency keys derived from our order ids, refunds, and webhook verification. Stripe's
// errors are logged by the caller and never shown to a client.
package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v79"
	"github.com/stripe/stripe-go/v79/client"
	"github.com/stripe/stripe-go/v79/webhook"

	"lastunit/shared/shop"
)

// Tolerance is how old a webhook signature may be.
const Tolerance = 300 * time.Second

// Config is how to reach Stripe.
type Config struct {
	SecretKey     string // STRIPE_SECRET_KEY
	APIBase       string // STRIPE_API_BASE; "" for the real API
	WebhookSecret string // STRIPE_WEBHOOK_SECRET
	Timeout       time.Duration
}

// Stripe implements shop.Payments and verifies webhooks.
type Stripe struct {
	api           *client.API
	webhookSecret string
}

var _ shop.Payments = (*Stripe)(nil)

// New builds a Stripe client. Network retries are few: every call carries an idempotency key,
// and the caller decides what a failure means.
func New(c Config) *Stripe {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	cfg := &stripe.BackendConfig{
		HTTPClient:        &http.Client{Timeout: c.Timeout},
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(1),
	}
	if c.APIBase != "" {
		cfg.URL = stripe.String(c.APIBase)
	}
	return &Stripe{api: client.New(c.SecretKey, stripe.NewBackendsWithConfig(cfg)), webhookSecret: c.WebhookSecret}
}

// CreateIntent creates a PaymentIntent for the order's total.
func (s *Stripe) CreateIntent(ctx context.Context, orderID string, amountCents int64, currency string) (string, string, error) {
	p := &stripe.PaymentIntentParams{
		Amount:                  stripe.Int64(amountCents),
		Currency:                stripe.String(currency),
		AutomaticPaymentMethods: &stripe.PaymentIntentAutomaticPaymentMethodsParams{Enabled: stripe.Bool(true)},
	}
	p.Context = ctx
	p.AddMetadata("order_id", orderID)
	p.SetIdempotencyKey("lastunit-pi-" + orderID)
	pi, err := s.api.PaymentIntents.New(p)
	if err != nil {
		return "", "", fmt.Errorf("create payment intent: %w", err)
	}
	return pi.ID, pi.ClientSecret, nil
}

// CancelIntent cancels a PaymentIntent; shop.ErrAlreadyPaid if it succeeded meanwhile. Each
// attempt has its own idempotency key (the order id and the attempt's time in ms): Stripe
// replays a key's first answer for 24 h, so a cancel refused once (the intent was processing)
// must not be answered with that refusal again.
func (s *Stripe) CancelIntent(ctx context.Context, orderID, paymentIntentID string, attempt time.Time) error {
	p := &stripe.PaymentIntentCancelParams{}
	p.Context = ctx
	p.SetIdempotencyKey(cancelKey(orderID, attempt))
	_, err := s.api.PaymentIntents.Cancel(paymentIntentID, p)
	if err == nil {
		return nil
	}
	var se *stripe.Error
	if errors.As(err, &se) && se.Code == stripe.ErrorCodePaymentIntentUnexpectedState {
		gp := &stripe.PaymentIntentParams{}
		gp.Context = ctx
		pi, gerr := s.api.PaymentIntents.Get(paymentIntentID, gp)
		if gerr == nil {
			switch pi.Status {
			case stripe.PaymentIntentStatusSucceeded, stripe.PaymentIntentStatusProcessing:
				return shop.ErrAlreadyPaid
			case stripe.PaymentIntentStatusCanceled:
				return nil
			}
		}
	}
	return fmt.Errorf("cancel payment intent: %w", err)
}

// cancelKey is the idempotency key of the attempt at attempt to cancel the order's intent.
func cancelKey(orderID string, attempt time.Time) string {
	return fmt.Sprintf("lastunit-cancel-%s-%d", orderID, attempt.UnixMilli())
}

// Intent reads a PaymentIntent: its status and, when it succeeded, it as the event Stripe
// sends (the sweep applies it when the webhook never came).
func (s *Stripe) Intent(ctx context.Context, paymentIntentID string) (shop.PaymentEvent, string, error) {
	p := &stripe.PaymentIntentParams{}
	p.Context = ctx
	pi, err := s.api.PaymentIntents.Get(paymentIntentID, p)
	if err != nil {
		return shop.PaymentEvent{}, "", fmt.Errorf("read payment intent: %w", err)
	}
	if pi.Status != stripe.PaymentIntentStatusSucceeded {
		return shop.PaymentEvent{}, string(pi.Status), nil
	}
	return shop.PaymentEvent{
		ID: "sweep:" + pi.ID, Type: shop.EventPaymentSucceeded, PaymentIntentID: pi.ID,
		OrderID: pi.Metadata["order_id"], AmountCents: pi.Amount, Currency: string(pi.Currency),
	}, shop.IntentSucceeded, nil
}

// Refund refunds a PaymentIntent in full.
func (s *Stripe) Refund(ctx context.Context, orderID, paymentIntentID string) error {
	p := &stripe.RefundParams{PaymentIntent: stripe.String(paymentIntentID)}
	p.Context = ctx
	p.AddMetadata("order_id", orderID)
	p.SetIdempotencyKey("lastunit-refund-" + orderID)
	if _, err := s.api.Refunds.New(p); err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Code == stripe.ErrorCodeChargeAlreadyRefunded {
			// Refunded already (an operator in Stripe's dashboard, or an answer we lost):
			// the money is back, which is what this call is for.
			return nil
		}
		return fmt.Errorf("refund: %w", err)
	}
	return nil
}

// Verify checks a webhook's Stripe-Signature (tolerance 300 s) and reduces the event to what
// the shop needs. A bad or missing signature is invalid_request.
func (s *Stripe) Verify(payload []byte, signature string) (shop.PaymentEvent, error) {
	ev, err := webhook.ConstructEventWithOptions(payload, signature, s.webhookSecret,
		webhook.ConstructEventOptions{Tolerance: Tolerance, IgnoreAPIVersionMismatch: true})
	if err != nil {
		e := shop.Invalid("Stripe-Signature", "the webhook signature does not verify")
		e.Err = err
		return shop.PaymentEvent{}, e
	}
	out := shop.PaymentEvent{ID: ev.ID, Type: string(ev.Type)}
	if ev.Data == nil || len(ev.Data.Raw) == 0 || len(out.Type) < len("payment_intent.") || out.Type[:len("payment_intent.")] != "payment_intent." {
		return out, nil
	}
	var pi stripe.PaymentIntent
	if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil {
		return shop.PaymentEvent{}, shop.Invalid("data.object", "the event's payment intent does not decode")
	}
	out.PaymentIntentID, out.AmountCents, out.Currency = pi.ID, pi.Amount, string(pi.Currency)
	out.OrderID = pi.Metadata["order_id"]
	return out, nil
}

// SignedEvent builds a payment_intent event as Stripe would send it, signed with secret at
// t: for the local runner's pay route and for tests.
func SignedEvent(secret, eventID, eventType, paymentIntentID, orderID string, amountCents int64, currency string, t time.Time) (payload []byte, signature string) {
	body, _ := json.Marshal(map[string]any{
		"id": eventID, "object": "event", "type": eventType, "api_version": stripe.APIVersion,
		"created": t.Unix(), "livemode": false,
		"data": map[string]any{"object": map[string]any{
			"id": paymentIntentID, "object": "payment_intent", "amount": amountCents, "currency": currency,
			"status":   map[string]string{shop.EventPaymentSucceeded: "succeeded", shop.EventPaymentCanceled: "canceled"}[eventType],
			"metadata": map[string]string{"order_id": orderID},
		}},
	})
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: t})
	return sp.Payload, sp.Header
}
