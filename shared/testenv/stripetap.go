package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lastunit/shared/payment"
)

// StripeTap is Stripe as the tests need it: every call goes to stripe-mock (which validates
// the parameters and answers in Stripe's shapes), and the tap lays over its answers the state
// stripe-mock does not keep: each PaymentIntent's status (set by the test: Succeed), cancels
// refused for an intent that succeeded (as Stripe refuses them), and the refunds made. It
// also counts the calls, so a test can bound what a sweep costs Stripe.
type StripeTap struct {
	mu          sync.Mutex
	intents     map[string]*TapIntent      // by PaymentIntent id
	byOrder     map[string]string          // order id -> PaymentIntent id
	byKey       map[string]string          // idempotency key of a create -> PaymentIntent id
	refunds     map[string]map[string]bool // PaymentIntent id -> idempotency keys of the refunds made
	failRefunds int                        // refunds still to answer with a server error
	keepOpen    bool                       // cancels answer canceled but leave the intent as it was
	calls       map[string]int             // "METHOD /v1/kind" -> count
	backend     http.Handler
}

// TapIntent is one PaymentIntent as the tap knows it.
type TapIntent struct {
	ID, OrderID, Currency, Status string
	Amount                        int64
}

// WithStripeTap replaces the Env's Stripe with one through a tap, and returns the tap.
func (e *Env) WithStripeTap(t testing.TB) *StripeTap {
	t.Helper()
	base := env("TEST_STRIPE_API_BASE", DefaultStripeAPIBase)
	mustAnswer(t, "stripe-mock", base)
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	tap := &StripeTap{intents: map[string]*TapIntent{}, byOrder: map[string]string{}, byKey: map[string]string{}, refunds: map[string]map[string]bool{},
		calls: map[string]int{}, backend: httputil.NewSingleHostReverseProxy(target)}
	srv := httptest.NewServer(tap)
	t.Cleanup(srv.Close)
	e.Stripe = payment.New(payment.Config{SecretKey: "sk_test_lastunit", APIBase: srv.URL, WebhookSecret: WebhookSecret, Timeout: 5 * time.Second})
	e.Shop.Pay = e.Stripe
	return tap
}

// Succeed marks the order's PaymentIntent succeeded (the shopper paid), and returns it.
func (p *StripeTap) Succeed(t testing.TB, orderID string) TapIntent {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	pi, ok := p.intents[p.byOrder[orderID]]
	if !ok {
		t.Fatalf("stripe tap: order %s has no PaymentIntent", orderID)
	}
	pi.Status = "succeeded"
	return *pi
}

// Intents returns every PaymentIntent the tap saw created.
func (p *StripeTap) Intents() []TapIntent {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]TapIntent, 0, len(p.intents))
	for _, pi := range p.intents {
		out = append(out, *pi)
	}
	return out
}

// Refunds returns how many refunds Stripe made for a PaymentIntent: one per idempotency
// key, as Stripe replays a key's first answer.
func (p *StripeTap) Refunds(paymentIntentID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.refunds[paymentIntentID])
}

// KeepIntentsOpen(true) makes cancels answer as Stripe does while the intent stays as it was, so a
// test can pay an order after its deadline canceled it (stripe-mock, which keeps no state,
// lets that happen; the late-payment paths must hold up to it).
func (p *StripeTap) KeepIntentsOpen(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keepOpen = on
}

// FailRefunds makes the next n refund calls fail with a server error (Stripe down).
func (p *StripeTap) FailRefunds(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failRefunds = n
}

// Calls returns how many calls of a kind ("GET /v1/payment_intents", "POST /v1/refunds", ...)
// reached Stripe.
func (p *StripeTap) Calls(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[kind]
}

// ServeHTTP passes the call to stripe-mock and lays the tap's state over the answer.
func (p *StripeTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // v1, kind, id, action
	kind := r.Method + " /" + strings.Join(parts[:min(2, len(parts))], "/")
	if len(parts) == 4 {
		kind += "/" + parts[3]
	}
	p.mu.Lock()
	p.calls[kind]++
	var pi *TapIntent
	if len(parts) >= 3 && parts[1] == "payment_intents" {
		pi = p.intents[parts[2]]
	}
	if kind == "POST /v1/payment_intents/cancel" && pi != nil && pi.Status == "succeeded" {
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state",` +
			`"message":"You cannot cancel this PaymentIntent because it has a status of succeeded."}}`))
		return
	}
	if kind == "POST /v1/refunds" && p.failRefunds > 0 {
		p.failRefunds--
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"injected: Stripe is down"}}`))
		return
	}
	p.mu.Unlock()

	rec := httptest.NewRecorder()
	p.backend.ServeHTTP(rec, r)
	out := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		out = p.overlay(kind, parts, form, r.Header.Get("Idempotency-Key"), out)
	}
	for k, v := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(rec.Code)
	_, _ = w.Write(out)
}

// overlay records what a successful call changed and rewrites stripe-mock's fixture to it.
func (p *StripeTap) overlay(kind string, parts []string, form url.Values, key string, body []byte) []byte {
	var obj map[string]any
	if json.Unmarshal(body, &obj) != nil {
		return body
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case kind == "POST /v1/payment_intents" && key != "" && p.byKey[key] != "":
		// Stripe answers a create retried with the same Idempotency-Key (stripe-go retries one
		// that timed out) with the first intent; stripe-mock, which keeps nothing, makes another.
		p.show(obj, p.intents[p.byKey[key]])
	case kind == "POST /v1/payment_intents":
		id, _ := obj["id"].(string)
		if key != "" {
			p.byKey[key] = id
		}
		amount, _ := strconv.ParseInt(form.Get("amount"), 10, 64)
		pi := &TapIntent{ID: id, OrderID: form.Get("metadata[order_id]"), Currency: form.Get("currency"), Amount: amount, Status: "requires_payment_method"}
		p.intents[id], p.byOrder[pi.OrderID] = pi, id
		p.show(obj, pi)
	case kind == "GET /v1/payment_intents" && len(parts) == 3:
		if pi := p.intents[parts[2]]; pi != nil {
			p.show(obj, pi)
		}
	case kind == "POST /v1/payment_intents/cancel":
		if pi := p.intents[parts[2]]; pi != nil {
			shown := *pi
			shown.Status = "canceled"
			if !p.keepOpen {
				*pi = shown
			}
			p.show(obj, &shown)
		}
	case kind == "POST /v1/refunds":
		pi := form.Get("payment_intent")
		if p.refunds[pi] == nil {
			p.refunds[pi] = map[string]bool{}
		}
		p.refunds[pi][key] = true
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return body
	}
	return out
}

func (p *StripeTap) show(obj map[string]any, pi *TapIntent) {
	obj["id"], obj["status"], obj["amount"], obj["currency"] = pi.ID, pi.Status, pi.Amount, pi.Currency
	obj["metadata"] = map[string]string{"order_id": pi.OrderID}
}
