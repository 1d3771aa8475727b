package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"lastunit/shared/apigw"
	"lastunit/shared/payment"
	"lastunit/shared/shop"
)

// payer completes payments locally the way Stripe would: it signs a
// payment_intent.succeeded event for the order's PaymentIntent and posts it to the webhook.
type payer struct {
	orders  shop.OrderStore
	secret  string // STRIPE_WEBHOOK_SECRET
	webhook string // the runner's own webhook URL
	client  *http.Client
	// auth names the caller from the request's bearer token; nil refuses everyone.
	auth func(*http.Request) (apigw.Identity, error)
}

// pay serves POST /_local/pay/{order_id} for the order's owner or an admin: 202 once the
// webhook accepted the event; 401 without a valid token, 404 for someone else's order (as
// GET /orders/{id} answers).
func (p *payer) pay(w http.ResponseWriter, r *http.Request) {
	if p.auth == nil {
		apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeUnauthenticated, "a bearer token is required")))
		return
	}
	who, err := p.auth(r)
	if err != nil {
		apigw.WriteHTTP(w, apigw.ErrorResponse(err))
		return
	}
	o, err := p.orders.Order(r.Context(), r.PathValue("order_id"))
	if err == nil && o.UserID != who.UserID && !who.IsAdmin() {
		err = shop.ErrNotFound
	}
	if errors.Is(err, shop.ErrNotFound) {
		apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeNotFound, "no such order")))
		return
	}
	if err != nil {
		apigw.WriteHTTP(w, apigw.ErrorResponse(err))
		return
	}
	if o.PaymentIntentID == nil {
		apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeInvalidState, "the order has no payment intent")))
		return
	}
	body, sig := payment.SignedEvent(p.secret, shop.NewID("evt_local_"), shop.EventPaymentSucceeded, *o.PaymentIntentID, o.ID, o.AmountCents, o.Currency, time.Now())
	status, err := p.post(r.Context(), body, sig)
	if err != nil || status != http.StatusOK {
		e := shop.Errorf(shop.CodePaymentProviderError, "the webhook answered %d", status)
		e.Err = err
		apigw.WriteHTTP(w, apigw.ErrorResponse(e))
		return
	}
	apigw.WriteHTTP(w, apigw.JSON(http.StatusAccepted, map[string]string{"order_id": o.ID, "payment_intent_id": *o.PaymentIntentID}))
}

func (p *payer) post(ctx context.Context, body []byte, sig string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.webhook, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Stripe-Signature", sig)
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	return resp.StatusCode, nil
}
