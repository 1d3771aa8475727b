package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// chartPixels is each control-room chart's canvas as a data URL, by chart id ("" : no canvas
// yet, or nothing drawn on it).
func chartPixels(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	var px map[string]string
	do(t, ctx, "read the charts' canvases", chromedp.Evaluate(`Object.fromEntries([...document.querySelectorAll("[data-chart]")].map((f) => {
  const c = f.querySelector("canvas");
  return [f.dataset.chart, c && c.width > 0 && c.height > 0 ? c.toDataURL() : ""];
}))`, &px))
	return px
}

// windowTotal is the control room's total of a series over its window (the number under the
// chart), or -1 when it shows none.
const windowTotal = `((field) => { const s = document.querySelector('[data-chart] .cr-totals [data-series="' + field + '"]');
  return s && s.dataset.value !== "" ? Number(s.dataset.value) : -1; })`

// TestControlRoomInABrowser: an admin watches a scripted drop in the dashboard's control room
// in real Chromium. Before anything happens every chart is drawn; during the drop the window's
// totals under the charts add up to exactly what the script did (two reserves that succeed,
// one over the limit, one out of stock, a release, a checkout and a payment), the canvases
// change, and they keep moving with the clock; the funnel and the sale's facts come from the
// report; the per-minute CSV downloads as a file equal to the route's answer with Accept:
// text/csv; and the Content-Security-Policy blocks nothing (uPlot styles its elements through
// the CSSOM, which style-src 'self' allows).
func TestControlRoomInABrowser(t *testing.T) {
	env := testenv.NewEnv(t)
	env.Stripe, env.Queue = testenv.Stripe(t), testenv.Queue(t, time.Second)
	env.Shop.Pay, env.Shop.Jobs = env.Stripe, env.Queue
	env.Shop.Now = time.Now // the live series is per second of the real clock
	srv := startFullServer(t, env)
	admin, alice, bob, carol := bearer(t, "ada", "admin"), bearer(t, "alice"), bearer(t, "bob"), bearer(t, "carol")
	// Another product, listed first: the picker has to be used.
	if r := call(t, srv, "PUT", "/admin/products/aaa-first", admin,
		`{"name":"Aaa first","price_cents":1000,"currency":"usd","stock":5,"max_per_user":1}`); r.status != 200 {
		t.Fatalf("put aaa-first: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "PUT", "/admin/products/gauge", admin,
		`{"name":"Gauge","price_cents":4200,"currency":"usd","stock":3,"max_per_user":2}`); r.status != 200 {
		t.Fatalf("put gauge: %d %s", r.status, r.body)
	}

	ctx := tab(t, browser(t))
	downloads := t.TempDir()
	do(t, ctx, "allow downloads", cdpbrowser.SetDownloadBehavior(cdpbrowser.SetDownloadBehaviorBehaviorAllow).WithDownloadPath(downloads))
	signInAs(t, ctx, srv.URL+"/dashboard", "ada", true)
	waitJS(t, ctx, "gauge in the control room's picker", `!!document.querySelector('#cr-product option[value="gauge"]')`, 15*time.Second)
	pick := func(sel, value string) {
		do(t, ctx, "pick "+value+" in "+sel, chromedp.SetValue(sel, value, chromedp.ByQuery),
			chromedp.Evaluate(`document.querySelector("`+sel+`").dispatchEvent(new Event("change")); true`, nil))
	}
	pick("#cr-product", "gauge")
	pick("#cr-seconds", "60") // a one-minute window: the drop fills more of each chart
	waitText(t, ctx, "#cr-window-label", "last 60 s", 5*time.Second)
	// Every chart is drawn (uPlot's canvas, with its axes) and the totals read 0.
	waitJS(t, ctx, "five charts drawn", `[...document.querySelectorAll("[data-chart] .cr-plot canvas")].length === 5`, 10*time.Second)
	waitJS(t, ctx, "the window's totals", windowTotal+`("reserve_ok") === 0 && `+windowTotal+`("available") === 3`, 10*time.Second)
	before := chartPixels(t, ctx)
	for id, px := range before {
		if px == "" {
			t.Errorf("chart %s has no canvas", id)
		}
	}

	// The scripted drop.
	reserve := func(who, name string, qty, want int) string {
		t.Helper()
		r := call(t, srv, "POST", "/reservations", who, fmt.Sprintf(`{"product_id":"gauge","quantity":%d}`, qty))
		if r.status != want {
			t.Fatalf("%s reserves %d: %d %s, want %d", name, qty, r.status, r.body, want)
		}
		var res shop.Reservation
		_ = json.Unmarshal(r.body, &res)
		return res.ID
	}
	a1 := reserve(alice, "alice", 1, 201)
	reserve(alice, "alice", 1, 201)
	reserve(alice, "alice", 1, 409) // limit_exceeded: 2 per shopper
	reserve(bob, "bob", 1, 201)     // the last unit
	reserve(carol, "carol", 1, 409) // out_of_stock
	if r := call(t, srv, "DELETE", "/reservations/"+a1, alice, ""); r.status != 204 {
		t.Fatalf("alice releases: %d %s", r.status, r.body)
	}
	r := call(t, srv, "POST", "/checkout", bob, `{}`)
	if r.status != 201 {
		t.Fatalf("bob checks out: %d %s", r.status, r.body)
	}
	var order shop.Order
	if err := json.Unmarshal(r.body, &order); err != nil {
		t.Fatal(err)
	}
	if r := call(t, srv, "POST", "/_local/pay/"+order.ID, bob, ""); r.status != 202 {
		t.Fatalf("bob pays: %d %s", r.status, r.body)
	}

	// The window's totals are exactly the script's: the counts, and available and held (3 units,
	// alice holds 1, bob bought 1: held 1 once the fulfillment dropped bob's hold).
	want := map[string]int{"reserve_ok": 3, "limit_exceeded": 1, "out_of_stock": 1, "not_admitted": 0, "not_open": 0,
		"rate_limited": 0, "released": 1, "checked_out": 1, "paid": 1, "expired": 0, "available": 1, "held": 1}
	var got map[string]float64
	match := func() bool {
		do(t, ctx, "read the totals", chromedp.Evaluate(`Object.fromEntries([...document.querySelectorAll(".cr-totals [data-series]")]
  .map((s) => [s.dataset.series, s.dataset.value === "" ? -1 : Number(s.dataset.value)]))`, &got))
		for f, n := range want {
			if got[f] != float64(n) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(20 * time.Second); !match(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the control room's totals\n got  %v\n want %v\nGET /admin/products: %s\nlive: %s", got, want,
				call(t, srv, "GET", "/admin/products", admin, "").body, call(t, srv, "GET", "/admin/products/gauge/live?seconds=30", admin, "").body)
		}
	}
	t.Logf("the control room's totals: %v", got)
	var live shop.Live
	if err := json.Unmarshal(call(t, srv, "GET", "/admin/products/gauge/live?seconds=5", admin, "").body, &live); err != nil || len(live.Points) == 0 {
		t.Fatalf("GET live: %v %+v", err, live)
	}
	if now := live.Points[len(live.Points)-1]; now.Held != 1 || now.Available != 1 {
		t.Errorf("the route's last second says held %d, available %d; want 1 and 1", now.Held, now.Available)
	}
	after := chartPixels(t, ctx)
	for _, id := range []string{"reserves", "stock", "payments"} {
		if after[id] == "" || after[id] == before[id] {
			t.Errorf("chart %s did not change with the drop", id)
		}
	}
	// They move with the clock: two seconds on, the reserves slide left.
	time.Sleep(2 * time.Second)
	if later := chartPixels(t, ctx); later["reserves"] == after["reserves"] {
		t.Error("the reserves chart did not move in two seconds")
	}
	// The refusals by code over the window, and the funnel and facts from the report.
	waitText(t, ctx, `[data-refusal="limit_exceeded"] [data-col="live"]`, "1", 5*time.Second)
	waitText(t, ctx, `[data-refusal="out_of_stock"] [data-col="live"]`, "1", 5*time.Second)
	waitJS(t, ctx, "the funnel from the report", `(() => {
  const n = (k) => Number((document.querySelector('[data-stage="' + k + '"] b') || {}).textContent);
  return n("held") === 2 && n("checked_out") === 1 && n("paid") >= 1; })()`, 15*time.Second)
	waitText(t, ctx, `[data-fact="shoppers"]`, "2", 5*time.Second)
	if dir := os.Getenv("SCREENSHOTS"); dir != "" { // the control room alone (docs/pages.md)
		var png []byte
		do(t, ctx, "screenshot the control room", chromedp.ScrollIntoView("#control-room", chromedp.ByQuery),
			chromedp.Screenshot("#control-room", &png, chromedp.ByQuery))
		if err := os.WriteFile(filepath.Join(dir, "control-room.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The CSV: the button saves the route's text/csv answer as gauge-report.csv.
	do(t, ctx, "download the CSV", chromedp.Click("#cr-csv", chromedp.ByQuery))
	file := filepath.Join(downloads, "gauge-report.csv")
	eventually(t, 10*time.Second, "gauge-report.csv downloaded", func() bool {
		st, err := os.Stat(file)
		return err == nil && st.Size() > 0
	})
	csv, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	direct := call(t, srv, "GET", "/admin/products/gauge/report", admin, "", "Accept", "text/csv")
	if direct.status != 200 || !strings.HasPrefix(direct.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("GET report as CSV: %d %q", direct.status, direct.header.Get("Content-Type"))
	}
	if !bytes.Equal(csv, direct.body) {
		t.Errorf("the downloaded CSV\n%s\nis not the route's\n%s", csv, direct.body)
	}
	if first, _, _ := strings.Cut(string(csv), "\n"); !strings.HasPrefix(first, "minute,reserve_ok,") {
		t.Errorf("the CSV's header row is %q", first)
	}
	waitText(t, ctx, "#cr-msg", "Downloaded gauge-report.csv", 5*time.Second)
	if v := cspViolations(t, ctx); len(v) != 0 {
		t.Errorf("the Content-Security-Policy blocked %v in the control room", v)
	}
	env.CheckLedger(t, "gauge", 3)
}
