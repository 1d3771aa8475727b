package handler_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/handler"
	"lastunit/shared/payment"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

func webhookEvent(body, sig string) events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: handler.RouteStripeWebhook, RawPath: "/webhooks/stripe",
		Headers: map[string]string{"content-type": "application/json; charset=utf-8", "stripe-signature": sig},
		Body:    body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{RouteKey: handler.RouteStripeWebhook, RequestID: "test",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/webhooks/stripe"}},
	}
}

// TestWebhookSignatures: only a fresh, correct signature over the exact body is accepted;
// anything else is 400 and changes nothing.
func TestWebhookSignatures(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "w", 3, 3)
	ctx := context.Background()
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "alice", ProductID: "w", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	h := handler.Webhook(env.Shop, env.Stripe, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	sign := func(secret string, at time.Time) (string, string) {
		b, sig := payment.SignedEvent(secret, "evt_"+at.Format("150405.000"), shop.EventPaymentSucceeded, *o.PaymentIntentID, o.ID, o.AmountCents, o.Currency, at)
		return string(b), sig
	}
	now := time.Now()
	good, goodSig := sign(testenv.WebhookSecret, now)
	wrongBody, wrongSig := sign("whsec_someone_else", now)
	old, oldSig := sign(testenv.WebhookSecret, now.Add(-10*time.Minute))
	tests := []struct {
		name, body, sig string
	}{
		{"no signature", good, ""},
		{"garbage signature", good, "t=1,v1=deadbeef"},
		{"wrong secret", wrongBody, wrongSig},
		{"tampered amount", strings.Replace(good, `"amount":`+jsonNum(o.AmountCents), `"amount":1`, 1), goodSig},
		{"tampered type", strings.Replace(good, "payment_intent.succeeded", "payment_intent.canceled", 1), goodSig},
		{"ten minutes old", old, oldSig},
	}
	for _, tc := range tests {
		resp, _ := h.Serve(ctx, webhookEvent(tc.body, tc.sig))
		if resp.StatusCode != 400 || !strings.Contains(resp.Body, `"invalid_request"`) {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, resp.Body)
		}
	}
	got, _ := env.Shop.GetOrder(ctx, "alice", false, o.ID)
	if got.Status != shop.OrderPaymentPending {
		t.Fatalf("a rejected webhook changed the order to %s", got.Status)
	}
	var seen int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM stripe_events`).Scan(&seen); err != nil {
		t.Fatal(err)
	}
	if seen != 0 {
		t.Fatalf("%d events recorded from rejected webhooks", seen)
	}

	resp, _ := h.Serve(ctx, webhookEvent(good, goodSig))
	if resp.StatusCode != 200 {
		t.Fatalf("good signature: %d %s", resp.StatusCode, resp.Body)
	}
	if got, _ := env.Shop.GetOrder(ctx, "alice", false, o.ID); got.Status != shop.OrderPaid {
		t.Fatalf("after a good webhook the order is %s", got.Status)
	}
	// Other event types are acknowledged and ignored.
	b, sig := payment.SignedEvent(testenv.WebhookSecret, "evt_other", "charge.refunded", "pi_x", "", 1, "usd", now)
	if resp, _ := h.Serve(ctx, webhookEvent(string(b), sig)); resp.StatusCode != 200 {
		t.Fatalf("other type: %d %s", resp.StatusCode, resp.Body)
	}
	env.CheckLedger(t, "w", 3)
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }
