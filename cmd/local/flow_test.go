package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lastunit/shared/handler"
	"lastunit/shared/queue"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
	"lastunit/web"
)

// startFullServer serves every HTTP function, /_local/pay and /_local/faults, and polls the
// fulfill queue, as the runner does.
func startFullServer(t *testing.T, env *testenv.Env) *httptest.Server {
	t.Helper()
	srv, _ := startFullServerWith(t, env)
	return srv
}

// startFullServerWith is startFullServer that also returns the runner's server (its OpenID
// provider is s.oidc).
func startFullServerWith(t *testing.T, env *testenv.Env) (*httptest.Server, *server) {
	t.Helper()
	srv, s, _ := startFullServerBlockable(t, env)
	return srv, s
}

// wsBlock stands for a network that blocks WebSockets, in front of a test runner: while on,
// the handshake at /ws is refused (403, as a filtering proxy answers it) and set(true) drops
// the sockets that are open. It also counts the storefront's polling reads, GET /products/{id}.
type wsBlock struct {
	on    atomic.Bool
	polls atomic.Int64
	g     *wsGateway
}

// set turns the block on (dropping every open socket) or off; call it from the test's goroutine.
func (b *wsBlock) set(on bool) {
	b.on.Store(on)
	if on {
		b.g.closeAll()
	}
}

func (b *wsBlock) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" && b.on.Load() {
			http.Error(w, "WebSockets are blocked on this network", http.StatusForbidden)
			return
		}
		if id, ok := strings.CutPrefix(r.URL.Path, "/products/"); ok && r.Method == http.MethodGet && id != "" && !strings.Contains(id, "/") {
			b.polls.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

// startFullServerBlockable is startFullServerWith with a wsBlock in front of the runner.
func startFullServerBlockable(t *testing.T, env *testenv.Env) (*httptest.Server, *server, *wsBlock) {
	t.Helper()
	env.Shop.Dead = env.Queue
	health := func(ctx context.Context) error { return env.Pool.Ping(ctx) }
	s := newServer(quiet, []byte(testSecret), health,
		handler.Reserve(env.Shop, quiet), handler.Admin(env.Shop, quiet),
		handler.Checkout(env.Shop, quiet), handler.Webhook(env.Shop, env.Stripe, quiet))
	block := &wsBlock{}
	srv := httptest.NewUnstartedServer(block.wrap(withContract(t, s)))
	srv.Start()
	t.Cleanup(srv.Close)
	p := &payer{auth: s.identity, orders: env.Shop.Store, secret: testenv.WebhookSecret, webhook: srv.URL + "/webhooks/stripe", client: srv.Client()}
	s.handle("POST /_local/pay/{order_id}", p.pay)
	f := &faults{}
	env.Shop.Fault = f.hook
	s.handle("PUT /_local/faults", f.put)
	s.serveOIDC(newOIDCProviderWithKey(srv.URL, testKey())) // the runner's OpenID provider, as main does
	s.servePages(web.Config{Local: true, Auth: authConfig(StoreClientID), AdminAuth: authConfig(AdminClientID)})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url, err := env.Queue.URL(ctx, queue.Fulfill)
	if err != nil {
		t.Fatal(err)
	}
	go poll(ctx, quiet, env.Queue.Client, url, "arn:local", handler.Fulfill(env.Shop, quiet))
	block.g = attachLive(t, env, s, srv.URL) // /ws, /@connections and the broadcaster, as the runner's startLive
	return srv, s, block
}

func bearer(t *testing.T, sub string, groups ...string) string {
	tok, err := mintToken([]byte(testSecret), sub, groups, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

// eventually retries check every 100 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPaymentFailureAndAdminToolsOverHTTP walks the whole path a person would: reserve,
// checkout, pay, fulfil; then with fulfilment failing on purpose, three attempts, the dead
// letter, the admin's list, retry, cancel with refund and redrive.
func TestPaymentFailureAndAdminToolsOverHTTP(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Stripe, env.Queue = testenv.Stripe(t), testenv.Queue(t, time.Second)
	env.Shop.Pay, env.Shop.Jobs = env.Stripe, env.Queue
	env.Shop.Now = time.Now // the poller runs in real time
	srv := startFullServer(t, env)
	admin, alice, bob := bearer(t, "ada", "admin"), bearer(t, "alice"), bearer(t, "bob")
	call(t, srv, "PUT", "/admin/products/tee", admin, `{"name":"Tee","price_cents":2500,"currency":"usd","stock":10,"max_per_user":10}`)

	status := func(id string) string {
		var o shop.Order
		if err := json.Unmarshal(call(t, srv, "GET", "/orders/"+id, alice, "").body, &o); err != nil {
			t.Fatal(err)
		}
		return o.Status
	}
	payAs := alice
	buy := func(qty int) shop.Order {
		t.Helper()
		r := call(t, srv, "POST", "/reservations", alice, fmt.Sprintf(`{"product_id":"tee","quantity":%d}`, qty))
		if r.status != 201 {
			t.Fatalf("reserve: %d %s", r.status, r.body)
		}
		r = call(t, srv, "POST", "/checkout", alice, `{}`)
		if r.status != 201 {
			t.Fatalf("checkout: %d %s", r.status, r.body)
		}
		var o shop.Order
		if err := json.Unmarshal(r.body, &o); err != nil {
			t.Fatal(err)
		}
		// Only the owner (or an admin) may pay: no token is 401, another shopper's 404,
		// and neither moves the order.
		wantError(t, call(t, srv, "POST", "/_local/pay/"+o.ID, "", ""), 401, shop.CodeUnauthenticated, "")
		wantError(t, call(t, srv, "POST", "/_local/pay/"+o.ID, bob, ""), 404, shop.CodeNotFound, "")
		wantError(t, call(t, srv, "POST", "/_local/pay/o_nosuchorder", alice, ""), 404, shop.CodeNotFound, "")
		if st := status(o.ID); st != shop.OrderPaymentPending {
			t.Fatalf("after refused payments the order is %q", st)
		}
		if r := call(t, srv, "POST", "/_local/pay/"+o.ID, payAs, ""); r.status != 202 {
			t.Fatalf("pay: %d %s", r.status, r.body)
		}
		return o
	}

	o1 := buy(2)
	eventually(t, 10*time.Second, "first order fulfilled", func() bool { return status(o1.ID) == shop.OrderFulfilled })

	if r := call(t, srv, "PUT", "/_local/faults", "", `{"fulfill":"fail"}`); r.status != 204 {
		t.Fatalf("faults: %d %s", r.status, r.body)
	}
	o2, o3 := buy(1), buy(1)
	var jobs struct {
		FailedJobs []shop.FailedJob `json:"failed_jobs"`
	}
	eventually(t, 20*time.Second, "two failed jobs listed", func() bool {
		if err := json.Unmarshal(call(t, srv, "GET", "/admin/failed-jobs", admin, "").body, &jobs); err != nil {
			t.Fatal(err)
		}
		return len(jobs.FailedJobs) == 2
	})
	for _, j := range jobs.FailedJobs {
		if j.Attempts != 3 || j.LastError != errInjected.Error() {
			t.Fatalf("failed job %+v", j)
		}
	}
	if r := call(t, srv, "GET", "/admin/failed-jobs", alice, ""); r.status != 403 {
		t.Fatalf("a shopper listed failed jobs: %d", r.status)
	}
	call(t, srv, "PUT", "/_local/faults", "", `{"fulfill":"ok"}`)

	// Retry one: back to the queue from the dead letters, fulfilled once.
	if r := call(t, srv, "POST", "/admin/failed-jobs/"+o2.ID+"/retry", admin, ""); r.status != 202 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	eventually(t, 10*time.Second, "retried order fulfilled", func() bool { return status(o2.ID) == shop.OrderFulfilled })
	// Cancel the other: refunded, units back; a second cancel says the same and changes nothing.
	r := call(t, srv, "POST", "/admin/failed-jobs/"+o3.ID+"/cancel", admin, "")
	if r.status != 200 || status(o3.ID) != shop.OrderCancelled {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "POST", "/admin/failed-jobs/"+o3.ID+"/cancel", admin, ""); r.status != 200 {
		t.Fatalf("second cancel: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "POST", "/admin/failed-jobs/"+o1.ID+"/cancel", admin, ""); r.status != 409 {
		t.Fatalf("cancel of a fulfilled order: %d %s", r.status, r.body)
	}
	l := env.CheckLedger(t, "tee", 10)
	if l.Sold != 3 || l.Stock != 7 || l.Available != 7 {
		t.Fatalf("ledger after retry and cancel: %+v; want sold 3, stock 7, available 7", l)
	}

	// Redrive: two more dead letters, both back and fulfilled.
	call(t, srv, "PUT", "/_local/faults", "", `{"fulfill":"fail"}`)
	payAs = admin // an admin may pay a shopper's order
	o4, o5 := buy(1), buy(1)
	eventually(t, 20*time.Second, "two new failed jobs", func() bool {
		if err := json.Unmarshal(call(t, srv, "GET", "/admin/failed-jobs", admin, "").body, &jobs); err != nil {
			t.Fatal(err)
		}
		return len(jobs.FailedJobs) == 2
	})
	call(t, srv, "PUT", "/_local/faults", "", `{"fulfill":"ok"}`)
	// The worker marks a job failed on its last attempt; SQS dead-letters it at the next
	// receive, so the redrive is repeated until both have been moved.
	total := 0
	eventually(t, 10*time.Second, "both dead letters redriven", func() bool {
		var moved struct{ Moved int }
		r := call(t, srv, "POST", "/admin/failed-jobs/redrive", admin, "")
		if err := json.Unmarshal(r.body, &moved); err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusAccepted {
			t.Fatalf("redrive: %d %s", r.status, r.body)
		}
		total += moved.Moved
		return total >= 2
	})
	eventually(t, 10*time.Second, "redriven orders fulfilled", func() bool {
		return status(o4.ID) == shop.OrderFulfilled && status(o5.ID) == shop.OrderFulfilled
	})
	var orders struct{ Orders []shop.Order }
	if err := json.Unmarshal(call(t, srv, "GET", "/admin/orders?status=fulfilled", admin, "").body, &orders); err != nil {
		t.Fatal(err)
	}
	if len(orders.Orders) != 4 {
		t.Fatalf("%d fulfilled orders listed, want 4", len(orders.Orders))
	}
	if r := call(t, srv, "GET", "/admin/orders?status=lost", admin, ""); r.status != 400 {
		t.Fatalf("bad status filter: %d", r.status)
	}
	if l := env.CheckLedger(t, "tee", 10); l.Sold != 5 || l.Available != 5 {
		t.Fatalf("final ledger %+v", l)
	}
}
