package shop_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"lastunit/shared/payment"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// stripeProxy stands between the client and stripe-mock: it records the Idempotency-Key of
// every PaymentIntent cancel, and answers the first refuse cancels as Stripe does for an
// intent that is processing (stripe-mock keeps no state, so it cannot).
type stripeProxy struct {
	mu      sync.Mutex
	keys    []string
	refuse  int
	backend http.Handler
}

func (p *stripeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/cancel") {
		p.mu.Lock()
		p.keys = append(p.keys, r.Header.Get("Idempotency-Key"))
		refuse := p.refuse > 0
		p.refuse--
		p.mu.Unlock()
		if refuse {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state",` +
				`"message":"You cannot cancel this PaymentIntent because it has a status of processing."}}`))
			return
		}
	}
	p.backend.ServeHTTP(w, r)
}

func (p *stripeProxy) cancelKeys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.keys...)
}

// A cancel refused while the intent was processing is tried again by the next sweep with a
// key of its own: Stripe would replay the refusal for 24 h to the same key, and the order
// would stay payment_pending with its units held.
func TestPaymentCancelAttemptsHaveTheirOwnKeys(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	base := testenv.DefaultStripeAPIBase
	if v := os.Getenv("TEST_STRIPE_API_BASE"); v != "" {
		base = v
	}
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &stripeProxy{refuse: 1, backend: httputil.NewSingleHostReverseProxy(target)}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	env.Shop.Pay = payment.New(payment.Config{SecretKey: "sk_test_lastunit", APIBase: srv.URL, WebhookSecret: testenv.WebhookSecret, Timeout: 5 * time.Second})

	env.Product(t, "ck", 2, 2)
	o := lapsedOrder(t, env, "alice", "ck")
	if st := orderStatus(t, env, o.ID); st != shop.OrderPaymentPending {
		t.Fatalf("after a refused cancel the order is %s", st)
	}
	env.Clock.Advance(time.Minute) // the next sweep
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	keys := proxy.cancelKeys()
	if len(keys) != 2 {
		t.Fatalf("%d cancel calls (%q), want 2", len(keys), keys)
	}
	if keys[0] == keys[1] {
		t.Fatalf("both cancel attempts sent the key %q: Stripe would replay the first refusal", keys[0])
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "lastunit-cancel-"+o.ID+"-") {
			t.Fatalf("cancel key %q is not derived from the order id", k)
		}
	}
	if st := orderStatus(t, env, o.ID); st != shop.OrderExpired {
		t.Fatalf("after the second attempt the order is %s, want expired", st)
	}
	if l := env.CheckLedger(t, "ck", 2); l.Available != 2 {
		t.Fatalf("available %d, want the units back", l.Available)
	}
}
