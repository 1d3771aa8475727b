package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"lastunit/shared/draw"
	"lastunit/shared/handler"
	"lastunit/shared/testenv"
)

// sweepEvery runs the expiry sweep (the draw at draw_at, offers running out, backfill) every
// period for the rest of the test, as the runner's EXPIRE_EVERY schedule does.
func sweepEvery(t *testing.T, env *testenv.Env, period time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	expire := handler.Expire(env.Shop, quiet)
	go func() {
		defer close(done)
		every(ctx, period, func(ctx context.Context) {
			expire(ctx, scheduled()) //nolint:errcheck
		})
	}()
}

// drawState is the state the storefront shows for the caller's entry in the draw of product
// (data-state of its .entry line: none, entered, won, waitlisted, expired, lost) and the rank.
func drawState(t *testing.T, ctx context.Context, product string) (string, string) {
	t.Helper()
	var r []string
	do(t, ctx, "read the entry's state", chromedp.Evaluate(fmt.Sprintf(`(() => {
		const e = document.querySelector('[data-draw=%q] .entry');
		return e ? [e.dataset.state || "", e.dataset.rank || ""] : ["", ""];
	})()`, product), &r))
	return r[0], r[1]
}

// pickSizes sets the card's preference selects to sizes, in order, leaving the rest empty.
func pickSizes(product string, sizes ...string) chromedp.Action {
	js, _ := json.Marshal(sizes)
	return chromedp.Evaluate(fmt.Sprintf(`(() => {
		const want = %s;
		document.querySelectorAll('[data-draw=%q] select[data-pref]').forEach((s, i) => { s.value = want[i] || ""; });
	})()`, js, product), nil)
}

// TestDrawInABrowser: a one-unit draw in real Chromium, from the admin's form to the paid
// order. The admin creates the draw (sizes US 9 with the unit and US 10 with none) with the
// dashboard's form; three shoppers enter naming US 10 then US 9 (one replaces her entry, one
// withdraws and enters again; a one-variant draw beside it is entered without sizes); the card
// offers no Reserve button and counts down to the close
// and the draw. Between the close and the draw the admin sets a beacon. The sweep draws: rank 1 is offered US 9 (the first size of her list with a unit),
// sees the offer's timer and the hold in her cart, and lets it run out; the unit goes at once to
// rank 2, whose page learns it from the room's draw message and who checks out and pays (test
// payment, fulfilled); with the socket then blocked, rank 3's page, polling, goes from the
// waitlist to lost. The dashboard shows the draw's counts, and the public record linked from
// the card verifies, with outcomes matching what each shopper saw.
func TestDrawInABrowser(t *testing.T) {
	env := testenv.NewEnv(t)
	env.Stripe, env.Queue = testenv.Stripe(t), testenv.Queue(t, time.Second)
	env.Shop.Pay, env.Shop.Jobs = env.Stripe, env.Queue
	env.Shop.Now = time.Now
	const offerWindow = 15 * time.Second // DRAW_OFFER_WINDOW, short (rank 2 must check out within it, on a loaded machine)
	env.Shop.DrawOfferWindow = offerWindow
	srv, _, block := startFullServerBlockable(t, env)
	sweepEvery(t, env, 250*time.Millisecond)
	b := browser(t)

	names := []string{"alice", "bob", "carol"}
	shoppers := map[string]context.Context{}
	for _, name := range names {
		shoppers[name] = tab(t, b)
		signInAs(t, shoppers[name], srv.URL+"/", name, false)
	}
	admin := tab(t, b)
	signInAs(t, admin, srv.URL+"/dashboard", "ada", true)
	for i := 0; i < 50 && disabled(t, admin, "#create button[type=submit]"); i++ {
		time.Sleep(100 * time.Millisecond)
	}

	// The admin makes the draw with the form: entries from in 6 s for 30 s, the draw 10 s after
	// the close (time for the beacon). Choosing "Draw" sets the queue rate to 0 and enables Draw at.
	const open, entries, drawAfter = 6 * time.Second, 30 * time.Second, 10 * time.Second
	created := time.Now()
	do(t, admin, "create the draw",
		chromedp.SendKeys("#p-id", "sneaker", chromedp.ByQuery), chromedp.SendKeys("#p-name", "Sneaker", chromedp.ByQuery),
		chromedp.SetValue("#p-price", "12000", chromedp.ByQuery), chromedp.SetValue("#p-max", "1", chromedp.ByQuery),
		chromedp.SetValue("#p-rate", "3", chromedp.ByQuery),
		chromedp.Evaluate(`(() => { const s = document.querySelector("#p-alloc"); s.value = "draw"; s.dispatchEvent(new Event("change")); })()`, nil),
		chromedp.Evaluate(fmt.Sprintf(`(() => {
			const local = (ms) => { const d = new Date(%d + ms); return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19); };
			document.querySelector("#p-opens").value = local(%d);
			document.querySelector("#p-closes").value = local(%d);
			document.querySelector("#p-draw-at").value = local(%d);
		})()`, created.UnixMilli(), open.Milliseconds(), (open+entries).Milliseconds(), (open+entries+drawAfter).Milliseconds()), nil),
		chromedp.Click("#v-add", chromedp.ByQuery),
		chromedp.SendKeys("#v-rows tr:nth-child(1) .v-id", "us-9", chromedp.ByQuery), chromedp.SendKeys("#v-rows tr:nth-child(1) .v-name", "US 9", chromedp.ByQuery),
		chromedp.SetValue("#v-rows tr:nth-child(1) .v-stock", "1", chromedp.ByQuery),
		chromedp.Click("#v-add", chromedp.ByQuery),
		chromedp.SendKeys("#v-rows tr:nth-child(2) .v-id", "us-10", chromedp.ByQuery), chromedp.SendKeys("#v-rows tr:nth-child(2) .v-name", "US 10", chromedp.ByQuery),
		chromedp.SetValue("#v-rows tr:nth-child(2) .v-stock", "0", chromedp.ByQuery))
	var rate string
	do(t, admin, "the queue rate", chromedp.Value("#p-rate", &rate, chromedp.ByQuery))
	if rate != "0" || !disabled(t, admin, "#p-rate") || disabled(t, admin, "#p-draw-at") {
		t.Fatalf("with Draw chosen, the queue rate reads %q (disabled %v) and Draw at is disabled: %v", rate, disabled(t, admin, "#p-rate"), disabled(t, admin, "#p-draw-at"))
	}
	do(t, admin, "save the draw", chromedp.Click("#create button[type=submit]", chromedp.ByQuery))
	waitText(t, admin, "#msg", "Saved sneaker", 5*time.Second)
	waitText(t, admin, `[data-draw-counts="sneaker"]`, "entries 0", 5*time.Second)
	waitText(t, admin, `tr[data-draw="sneaker"]`, "commitment ", 5*time.Second)
	// Edit loads the draw's fields back into the form.
	var alloc, drawAt string
	do(t, admin, "edit the draw", chromedp.Click(`[data-edit="sneaker"]`, chromedp.ByQuery),
		chromedp.Value("#p-alloc", &alloc, chromedp.ByQuery), chromedp.Value("#p-draw-at", &drawAt, chromedp.ByQuery))
	if alloc != "draw" || drawAt == "" {
		t.Fatalf("Edit loads allocation %q, draw at %q", alloc, drawAt)
	}

	// A one-variant draw beside it (entries open for an hour): entered without sizes.
	poster := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second)
	if r := call(t, srv, "PUT", "/admin/products/poster", bearer(t, "ada", "admin"), fmt.Sprintf(`{"name":"Poster","price_cents":2000,"currency":"usd","stock":5,"max_per_user":2,"allocation":"draw","opens_at":%q,"closes_at":%q,"draw_at":%q}`,
		poster.Format(time.RFC3339), poster.Add(time.Hour).Format(time.RFC3339), poster.Add(time.Hour).Format(time.RFC3339))); r.status != 200 {
		t.Fatalf("put the poster draw: %d %s", r.status, r.body)
	}

	// Before the opening the card counts down to it. A draw is never reserved: no Reserve
	// button, and the API refuses a hold.
	for i, name := range names {
		ctx := shoppers[name]
		do(t, ctx, name+" reloads", chromedp.Reload())
		if i == 0 {
			waitText(t, ctx, `[data-draw="sneaker"] .phase`, "Entries open in", 5*time.Second)
			waitText(t, ctx, `[data-draw="sneaker"] .entry`, "Entries open at", time.Second)
		}
		waitJS(t, ctx, "the draw card", `!!document.querySelector('[data-draw="sneaker"] .phase')`, 10*time.Second)
		var reserve int
		do(t, ctx, "reserve buttons", chromedp.Evaluate(`document.querySelectorAll('[data-product="sneaker"] button.reserve, [data-product="sneaker"] .sizes input').length`, &reserve))
		if reserve != 0 {
			t.Fatalf("%s's draw card offers %d reserve controls", name, reserve)
		}
	}
	if r := call(t, srv, "POST", "/reservations", bearer(t, "dan"), `{"product_id":"sneaker","variant_id":"us-9"}`); r.status != 409 || !strings.Contains(string(r.body), "not_admitted") {
		t.Fatalf("a reserve on a draw: %d %s", r.status, r.body)
	}

	// Entries open: each shopper names US 10, then US 9.
	enter := func(name string, sizes ...string) {
		t.Helper()
		ctx := shoppers[name]
		do(t, ctx, name+" enters", pickSizes("sneaker", sizes...), chromedp.Click(`[data-enter="sneaker"] button.enter`, chromedp.ByQuery))
		waitText(t, ctx, `[data-draw="sneaker"] .entry`, "You are in the draw: "+strings.Join(sizeNames(sizes), ", then "), 5*time.Second)
	}
	for _, name := range names {
		waitText(t, shoppers[name], `[data-draw="sneaker"] .phase`, "Entries close in", 10*time.Second)
	}
	waitText(t, shoppers["alice"], `[data-draw="sneaker"] .phase`, "draw in", time.Second)
	enter("alice", "us-10", "us-9")
	// The one-variant draw has no size selects; Alice enters it for two.
	var selects int
	do(t, shoppers["alice"], "the poster's selects", chromedp.Evaluate(`document.querySelectorAll('[data-draw="poster"] select').length`, &selects))
	if selects != 0 {
		t.Fatalf("a one-variant draw shows %d size selects", selects)
	}
	do(t, shoppers["alice"], "alice enters the poster draw", chromedp.SetValue("#entry-qty-poster", "2", chromedp.ByQuery),
		chromedp.Click(`[data-enter="poster"] button.enter`, chromedp.ByQuery))
	waitText(t, shoppers["alice"], `[data-draw="poster"] .entry`, "You are in the draw: quantity 2", 5*time.Second)
	if r := call(t, srv, "GET", "/products/poster/entry", bearer(t, "alice"), ""); r.status != 200 || !strings.Contains(string(r.body), `"quantity":2`) || !strings.Contains(string(r.body), `"state":"entered"`) {
		t.Fatalf("alice's poster entry: %d %s", r.status, r.body)
	}
	screenshot(t, shoppers["alice"], "draw-entered.png")
	// Bob replaces his entry: the button reads "Update entry", the form holds his list.
	enter("bob", "us-9")
	waitText(t, shoppers["bob"], `[data-enter="sneaker"] button.enter`, "Update entry", time.Second)
	enter("bob", "us-10", "us-9")
	// Carol withdraws, then enters again.
	enter("carol", "us-9", "us-10")
	do(t, shoppers["carol"], "carol withdraws", chromedp.Click(`[data-enter="sneaker"] button.withdraw`, chromedp.ByQuery))
	waitText(t, shoppers["carol"], "#msg", "You withdrew", 5*time.Second)
	waitText(t, shoppers["carol"], `[data-draw="sneaker"] .entry`, "Not entered", 5*time.Second)
	if r := call(t, srv, "GET", "/products/sneaker/entry", bearer(t, "carol"), ""); r.status != 404 {
		t.Fatalf("carol's withdrawn entry: %d %s", r.status, r.body)
	}
	enter("carol", "us-10", "us-9")
	// The page reads the entry back: after a reload, the form holds the list.
	do(t, shoppers["bob"], "bob reloads", chromedp.Reload())
	waitText(t, shoppers["bob"], `[data-draw="sneaker"] .entry`, "US 10, then US 9", 5*time.Second)
	var form []string
	do(t, shoppers["bob"], "bob's form", chromedp.Evaluate(`[...document.querySelectorAll('[data-draw="sneaker"] select[data-pref]')].map((s) => s.value)`, &form))
	if len(form) < 2 || form[0] != "us-10" || form[1] != "us-9" {
		t.Fatalf("bob's form after a reload: %v", form)
	}
	for _, name := range names {
		r := call(t, srv, "GET", "/products/sneaker/entry", bearer(t, name), "")
		var e struct {
			VariantIDs []string `json:"variant_ids"`
			Quantity   int      `json:"quantity"`
			State      string   `json:"state"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &e) != nil || strings.Join(e.VariantIDs, ",") != "us-10,us-9" || e.Quantity != 1 || e.State != "entered" {
			t.Fatalf("%s's entry: %d %s", name, r.status, r.body)
		}
	}
	waitText(t, admin, `[data-draw-counts="sneaker"]`, "entries 3", 5*time.Second)

	// The close, then the draw (the sweep runs every 250 ms).
	for _, name := range names {
		waitText(t, shoppers[name], `[data-draw="sneaker"] .phase`, "Entries closed", time.Until(created.Add(open+entries))+10*time.Second)
	}
	if hidden := !visible(t, shoppers["alice"], `[data-enter="sneaker"]`); !hidden {
		t.Fatal("the entry form still shows after the close")
	}
	waitText(t, shoppers["alice"], `[data-draw="sneaker"] .phase`, "Entries closed · draw in", time.Second)
	// Between the close and the draw the admin sets the beacon from the dashboard.
	const beacon = "drand-quicknet-round-12345678"
	waitJS(t, admin, "the beacon field", `!!document.querySelector('[data-beacon="sneaker"]')`, 5*time.Second)
	do(t, admin, "set the beacon", chromedp.SendKeys("#beacon-sneaker", beacon, chromedp.ByQuery), chromedp.Click(`[data-beacon="sneaker"]`, chromedp.ByQuery))
	waitText(t, admin, "#msg", "Beacon set for sneaker", 5*time.Second)
	rankOf := map[string]string{}
	for _, name := range names {
		waitText(t, shoppers[name], `[data-draw="sneaker"] .phase`, "Drawn", 20*time.Second)
		waitJS(t, shoppers[name], name+" has a rank", `!!document.querySelector('[data-draw="sneaker"] .entry').dataset.rank`, 10*time.Second)
		_, rank := drawState(t, shoppers[name], "sneaker")
		rankOf[rank] = name
	}
	first, second, third := rankOf["1"], rankOf["2"], rankOf["3"]
	if first == "" || second == "" || third == "" {
		t.Fatalf("ranks after the draw: %v", rankOf)
	}
	t.Logf("the draw ranked %s, %s, %s", first, second, third)

	// Rank 1 is offered US 9 (her first choice has no unit): the timer and the hold in the cart.
	w := shoppers[first]
	waitText(t, w, `[data-draw="sneaker"] .entry`, "You won (rank 1)", 5*time.Second)
	waitText(t, w, `[data-draw="sneaker"] .entry`, "Sneaker (US 9)", time.Second)
	waitText(t, w, `[data-draw="sneaker"] .offer`, "Check out within", 3*time.Second)
	waitText(t, w, "#cart", "1 × Sneaker (US 9)", 5*time.Second)
	waitText(t, w, "#cart", "won in the draw", time.Second)
	for _, name := range []string{second, third} {
		waitText(t, shoppers[name], `[data-draw="sneaker"] .entry`, "On the waitlist (rank", 5*time.Second)
	}
	// The live counts come from the room's draw message.
	waitText(t, shoppers[third], `[data-draw="sneaker"] .counts`, "1 won · 2 on the waitlist", 5*time.Second)
	screenshot(t, w, "draw-won.png")
	waitText(t, admin, `[data-draw-counts="sneaker"]`, "entries 3 · won 1 · waitlisted 2 · expired 0 · lost 0 · paid 0", 5*time.Second)

	// Rank 1 lets the offer run out: her entry reads expired, and rank 2 is offered the unit,
	// live (the socket is on: the draw message makes the page read the entry again).
	waitText(t, w, `[data-draw="sneaker"] .entry`, "Your offer ran out", offerWindow+10*time.Second)
	n := shoppers[second]
	waitText(t, n, "#live", "Live stock: on", time.Second)
	waitText(t, n, `[data-draw="sneaker"] .entry`, "You won (rank 2)", 10*time.Second)
	waitText(t, n, `[data-draw="sneaker"] .offer`, "Check out within", 3*time.Second)
	waitText(t, n, "#cart", "1 × Sneaker (US 9)", 5*time.Second)
	if s, _ := drawState(t, shoppers[third], "sneaker"); s != "waitlisted" {
		t.Fatalf("rank 3 reads %q while rank 2 holds the offer", s)
	}

	// Rank 2 checks out at once (the offer's window is short), then the network blocks the
	// socket: the pages poll.
	do(t, n, second+" checks out", chromedp.Click("#checkout", chromedp.ByQuery), chromedp.WaitVisible("#pay-test", chromedp.ByQuery))
	waitText(t, n, "#order-status", "payment pending", 5*time.Second)
	waitText(t, n, `[data-draw="sneaker"] .entry`, "checked out", 5*time.Second)
	block.set(true)
	waitText(t, shoppers[third], "#live", "blocked", 10*time.Second)
	do(t, n, second+" pays", chromedp.Click("#pay-test", chromedp.ByQuery))
	waitText(t, n, "#order-status", "fulfilled", 20*time.Second)
	waitText(t, n, "#order-items", "1 × Sneaker (US 9)", time.Second)
	// Every size rank 3 named is sold now: lost, seen by polling.
	waitText(t, shoppers[third], `[data-draw="sneaker"] .entry`, "Not this time (rank 3)", 20*time.Second)
	waitText(t, admin, `[data-draw-counts="sneaker"]`, "entries 3 · won 1 · waitlisted 0 · expired 1 · lost 1 · paid 1", 10*time.Second)
	screenshot(t, admin, "draw-dashboard.png")
	block.set(false)

	// The public record, from the card's link: it verifies, and its outcomes are what the
	// pages said.
	var href string
	do(t, w, "the record's link", chromedp.Evaluate(`document.querySelector('[data-draw="sneaker"] a[data-record]').getAttribute("href")`, &href))
	r := call(t, srv, "GET", href, "", "")
	var rec draw.Record
	if r.status != 200 || json.Unmarshal(r.body, &rec) != nil {
		t.Fatalf("the public record at %s: %d %s", href, r.status, r.body)
	}
	if err := draw.Verify(rec); err != nil {
		t.Fatalf("the public record does not verify: %v", err)
	}
	if rec.Beacon == nil || *rec.Beacon != beacon {
		t.Fatalf("the record's beacon is %v, want the dashboard's %q", rec.Beacon, beacon)
	}
	outcome := map[string]string{}
	for _, e := range rec.Entries {
		if e.Rank != nil && e.Outcome != nil {
			outcome[fmt.Sprint(*e.Rank)] = *e.Outcome
		}
	}
	if want := map[string]string{"1": "expired", "2": "won", "3": "lost"}; fmt.Sprint(outcome) != fmt.Sprint(want) {
		t.Fatalf("the record's outcomes by rank %v, want %v", outcome, want)
	}
	for _, name := range names {
		if v := cspViolations(t, shoppers[name]); len(v) != 0 {
			t.Errorf("the Content-Security-Policy blocked %v on %s's page", v, name)
		}
	}
	if v := cspViolations(t, admin); len(v) != 0 {
		t.Errorf("the Content-Security-Policy blocked %v on the dashboard", v)
	}
	env.CheckLedger(t, "sneaker", 1)
}

// sizeNames is how the storefront names the test's sizes.
func sizeNames(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strings.ToUpper(strings.ReplaceAll(id, "-", " "))
	}
	return out
}

// visible reports whether the element matching sel is shown (not hidden, in the layout).
func visible(t *testing.T, ctx context.Context, sel string) bool {
	t.Helper()
	var v bool
	do(t, ctx, "visible "+sel, chromedp.Evaluate(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && !e.closest("[hidden]") && e.getClientRects().length > 0; })()`, sel), &v))
	return v
}
