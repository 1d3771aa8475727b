package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// The control room's routes through the runner, every exchange checked against
// web/api/openapi.yaml (withContract): live with and without seconds, the report as JSON and as
// CSV, and their refusals.
func TestControlRoomOverHTTP(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	srv := startServer(t, env)
	admin, alice := bearer(t, "ada", "admin"), bearer(t, "alice")
	if r := call(t, srv, "PUT", "/admin/products/desk", admin, `{"name":"Desk","price_cents":900,"currency":"usd","stock":2,"max_per_user":1}`); r.status != 200 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	call(t, srv, "POST", "/reservations", alice, `{"product_id":"desk","quantity":1}`)
	wantError(t, call(t, srv, "POST", "/reservations", alice, `{"product_id":"desk","quantity":1}`), 409, shop.CodeLimitExceeded, "")

	var live shop.Live
	r := call(t, srv, "GET", "/admin/products/desk/live?seconds=30", admin, "")
	if r.status != 200 || json.Unmarshal(r.body, &live) != nil || len(live.Points) != 30 {
		t.Fatalf("live: %d %s", r.status, r.body)
	}
	last := live.Points[29]
	if last.ReserveOK != 1 || last.LimitExceeded != 1 || last.Available != 1 || last.Held != 1 || !last.T.Equal(testenv.Start) {
		t.Errorf("live's current second: %+v", last)
	}
	if r := call(t, srv, "GET", "/admin/products/desk/live", admin, ""); r.status != 200 || strings.Count(string(r.body), `"t":`) != 300 {
		t.Errorf("live without seconds: %d, want 300 points", r.status)
	}
	for _, q := range []string{"0", "901", "abc", ""} {
		wantError(t, call(t, srv, "GET", "/admin/products/desk/live?seconds="+q, admin, ""), 400, shop.CodeInvalidRequest, "seconds")
	}
	wantError(t, call(t, srv, "GET", "/admin/products/nosuch/live", admin, ""), 404, shop.CodeNotFound, "")
	wantError(t, call(t, srv, "GET", "/admin/products/desk/live", alice, ""), 403, shop.CodeForbidden, "")

	// A minute later the sweep has rolled the first one; the report and its CSV have it.
	env.Clock.Advance(2 * time.Minute)
	if _, err := env.Shop.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	var rep shop.Report
	r = call(t, srv, "GET", "/admin/products/desk/report", admin, "")
	if r.status != 200 || json.Unmarshal(r.body, &rep) != nil {
		t.Fatalf("report: %d %s", r.status, r.body)
	}
	if rep.Shoppers != 1 || rep.Refusals[shop.CodeLimitExceeded] != 1 || rep.PeakReservesPerS != 1 {
		t.Errorf("report %s", r.body)
	}
	r = call(t, srv, "GET", "/admin/products/desk/report", admin, "", "Accept", "text/csv")
	lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "minute,reserve_ok,") || !strings.HasPrefix(lines[1], testenv.Start.Format(time.RFC3339)+",1,0,1,") {
		t.Errorf("csv: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	wantError(t, call(t, srv, "GET", "/admin/products/nosuch/report", admin, "", "Accept", "text/csv"), 404, shop.CodeNotFound, "")
	wantError(t, call(t, srv, "GET", "/admin/products/desk/report", alice, ""), 403, shop.CodeForbidden, "")
}

// TestControlRoomHeldAfterFulfillment: in the runner, an order checked out, paid and fulfilled
// by the SQS poller leaves GET …/live's held where Postgres and the gate have it. The fulfill
// job's drop.lua records the levels in the second of the service's clock (the one every other
// counting script is given), so the live series ends at held 1, not at the 2 held before the
// drop (which it read while drop.lua counted in a second of the gate's own clock, outside the
// window).
func TestControlRoomHeldAfterFulfillment(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Stripe, env.Queue = testenv.Stripe(t), testenv.Queue(t, time.Second)
	env.Shop.Pay, env.Shop.Jobs = env.Stripe, env.Queue
	env.Shop.Now = time.Now // the runner's clock: the poller and the live series run in real time
	srv := startFullServer(t, env)
	admin, alice, bob := bearer(t, "ada", "admin"), bearer(t, "alice"), bearer(t, "bob")
	if r := call(t, srv, "PUT", "/admin/products/lamp", admin, `{"name":"Lamp","price_cents":4200,"currency":"usd","stock":3,"max_per_user":2}`); r.status != 200 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	for _, who := range []string{alice, bob} {
		if r := call(t, srv, "POST", "/reservations", who, `{"product_id":"lamp","quantity":1}`); r.status != 201 {
			t.Fatalf("reserve: %d %s", r.status, r.body)
		}
	}
	r := call(t, srv, "POST", "/checkout", bob, `{}`)
	var o shop.Order
	if r.status != 201 || json.Unmarshal(r.body, &o) != nil {
		t.Fatalf("checkout: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "POST", "/_local/pay/"+o.ID, bob, ""); r.status != 202 {
		t.Fatalf("pay: %d %s", r.status, r.body)
	}
	eventually(t, 15*time.Second, "the order fulfilled", func() bool {
		var got shop.Order
		return json.Unmarshal(call(t, srv, "GET", "/orders/"+o.ID, bob, "").body, &got) == nil && got.Status == shop.OrderFulfilled
	})
	// Postgres and the gate: alice's unit held, bob's sold.
	var list struct {
		Products []shop.AdminProduct `json:"products"`
	}
	if r := call(t, srv, "GET", "/admin/products", admin, ""); r.status != 200 || json.Unmarshal(r.body, &list) != nil || len(list.Products) != 1 {
		t.Fatalf("admin products: %d %s", r.status, r.body)
	}
	p := list.Products[0]
	gate, err := env.Redis.HMGet(t.Context(), "{p:lamp}:gate", "avail", "held").Result()
	if err != nil {
		t.Fatal(err)
	}
	if p.Held != 1 || p.Available != 1 || gate[0] != "1" || gate[1] != "1" {
		t.Fatalf("after the fulfillment Postgres has held %d, available %d; the gate avail %v, held %v; want 1 and 1", p.Held, p.Available, gate[0], gate[1])
	}
	var live shop.Live
	if r := call(t, srv, "GET", "/admin/products/lamp/live?seconds=60", admin, ""); r.status != 200 || json.Unmarshal(r.body, &live) != nil || len(live.Points) != 60 {
		t.Fatalf("live: %d %s", r.status, r.body)
	}
	if last := live.Points[59]; last.Held != 1 || last.Available != 1 {
		t.Errorf("live ends at held %d, available %d; want held 1, available 1 (as Postgres and the gate)", last.Held, last.Available)
	}
}
