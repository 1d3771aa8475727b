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
