package handler

import (
	"context"
	"log/slog"
	"net/http"

	"lastunit/shared/apigw"
	"lastunit/shared/shop"
)

// RouteStripeWebhook is the webhook function's route.
const RouteStripeWebhook = "POST /webhooks/stripe"

// Verifier checks a webhook's signature and decodes its event (payment.Stripe).
type Verifier interface {
	Verify(payload []byte, signature string) (shop.PaymentEvent, error)
}

// Webhook returns the Stripe webhook function's handler. It answers 200 only once the
// event's effect is durable, 400 for a bad signature, and 5xx when Stripe should retry.
func Webhook(svc *shop.Service, v Verifier, log *slog.Logger) *apigw.Mux {
	m := apigw.NewMux(log)
	m.Handle(RouteStripeWebhook, apigw.Public, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		body, err := apigw.Body(r.Event)
		if err != nil {
			return 0, nil, err
		}
		if len(body) > apigw.MaxBody {
			return 0, nil, shop.Errorf(shop.CodePayloadTooLarge, "the body is over %d bytes", apigw.MaxBody)
		}
		ev, err := v.Verify(body, r.Header("Stripe-Signature"))
		if err != nil {
			return 0, nil, err
		}
		if err := svc.HandlePaymentEvent(ctx, ev); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]bool{"received": true}, nil
	})
	return m
}
