package shop_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"lastunit/shared/shop"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// A scripted drop: the live series adds up exactly to what the script did, second by second;
// the report's funnel matches the orders in Postgres, the same after overlapping sweeps and
// after a Redis FLUSHDB.
func TestControlRoomScriptedDrop(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	tap := env.WithStripeTap(t)
	env.Shop.LatencyBatch = 1 // every reserve hands the last latency over
	env.Product(t, "cr", 5, 2)
	reserve := func(user string, qty int64, want shop.Code) string {
		t.Helper()
		r, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: user, ProductID: "cr", Quantity: qty})
		if code(err) != want {
			t.Fatalf("%s reserves %d: %v, want %q", user, qty, err, want)
		}
		return r.ID
	}
	t0 := env.Clock.Now()

	// Second 0: three holds sell the product out; one shopper hits the limit, two find it sold out.
	reserve("alice", 2, "")
	bobHold := reserve("bob", 2, "")
	reserve("alice", 1, shop.CodeLimitExceeded)
	reserve("carol", 1, "")
	reserve("dave", 1, shop.CodeOutOfStock)
	reserve("erin", 1, shop.CodeOutOfStock)
	// Second 1: bob releases his hold.
	env.Clock.Advance(time.Second)
	if err := env.Shop.Release(ctx, "bob", bobHold); err != nil {
		t.Fatal(err)
	}
	// Second 2: dave takes the two units back.
	env.Clock.Advance(time.Second)
	reserve("dave", 2, "")
	// Second 3: alice checks out and pays; her order is fulfilled.
	env.Clock.Advance(time.Second)
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	tap.Succeed(t, o.ID)
	if err := env.Shop.HandlePaymentEvent(ctx, succeeded(o, "evt_cr")); err != nil {
		t.Fatal(err)
	}
	if err := env.Shop.Fulfill(ctx, o.ID, 1); err != nil {
		t.Fatal(err)
	}
	// Second 4: nothing happens.
	env.Clock.Advance(time.Second)

	live, err := env.Shop.Live(ctx, "cr", 6)
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ ok, lim, oos, rel, co, paid, avail, held int64 }
	want := []row{
		{avail: 5}, // the second before the drop
		{ok: 3, lim: 1, oos: 2, avail: 0, held: 5}, // second 0
		{rel: 1, avail: 2, held: 3},                // 1
		{ok: 1, avail: 0, held: 5},                 // 2
		{co: 1, paid: 1, avail: 0, held: 3},        // 3: paid, then fulfilled (units leave stock)
		{avail: 0, held: 3},                        // 4
	}
	if len(live.Points) != len(want) || live.StepS != 1 || live.ProductID != "cr" {
		t.Fatalf("live: %d points, step %d, product %q; want %d, 1, cr", len(live.Points), live.StepS, live.ProductID, len(want))
	}
	for i, p := range live.Points {
		if wantT := t0.Add(time.Duration(i-1) * time.Second); !p.T.Equal(wantT) {
			t.Errorf("point %d at %s, want %s", i, p.T, wantT)
		}
		got := row{p.ReserveOK, p.LimitExceeded, p.OutOfStock, p.Released, p.CheckedOut, p.Paid, p.Available, p.Held}
		if got != want[i] || p.NotAdmitted+p.NotOpen+p.RateLimited+p.Expired+p.QueueJoined+p.Serving != 0 {
			t.Errorf("point %d (%s): %+v, want %+v", i, p.T.Format(time.TimeOnly), p, want[i])
		}
	}
	// Seven reserves answered; each latency is recorded by the next reserve of the product,
	// so six are in the histograms (the last waits for a next one).
	read, err := env.Shop.Gate.Seconds(ctx, "cr", t0.Unix(), t0.Unix()+4)
	if err != nil {
		t.Fatal(err)
	}
	var samples int64
	for _, s := range read.Seconds {
		for _, n := range s.Latency {
			samples += n
		}
	}
	if samples != 6 {
		t.Errorf("%d latency samples in the histograms, want 6", samples)
	}
	if live.Points[1].ReserveMsP50 == nil || live.Points[1].ReserveMsP99 == nil || *live.Points[1].ReserveMsP99 < *live.Points[1].ReserveMsP50 {
		t.Errorf("second 0 has latencies p50 %v p99 %v", live.Points[1].ReserveMsP50, live.Points[1].ReserveMsP99)
	}

	// Two minutes on, overlapping sweeps roll the drop's minute into Postgres exactly once.
	env.Clock.Advance(2 * time.Minute)
	hammer(4, func(int) {
		if _, err := env.Shop.Sweep(ctx); err != nil {
			t.Error(err)
		}
	})
	var rows int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM sale_minutes WHERE product_id = 'cr'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Fatalf("%d rolled minutes, want the drop's one", rows)
	}
	before := checkReport(t, env, t0)

	if err := env.Redis.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Shop.Sweep(ctx); err != nil { // rebuilds the gate; rolls nothing new
		t.Fatal(err)
	}
	after := checkReport(t, env, t0)
	if before != after {
		t.Errorf("the report changed with a Redis flush:\nbefore %s\nafter  %s", before, after)
	}
	rep, err := env.Shop.Report(ctx, "cr")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Minutes) != 1 {
		t.Fatalf("%d minutes in the report, want 1", len(rep.Minutes))
	}
	m := rep.Minutes[0]
	if m.ReserveOK != 4 || m.Released != 1 || m.CheckedOut != 1 || m.Paid != 1 || m.PeakReservesPerS != 3 ||
		m.Available == nil || *m.Available != 0 || m.Held == nil || *m.Held != 3 {
		t.Errorf("the drop's minute: %+v", m)
	}
}

// checkReport checks the scripted drop's report against the script and against Postgres's own
// orders, and returns it as JSON.
func checkReport(t *testing.T, env *testenv.Env, t0 time.Time) string {
	t.Helper()
	rep, err := env.Shop.Report(ctx, "cr")
	if err != nil {
		t.Fatal(err)
	}
	var pg shop.Funnel
	if err := env.Pool.QueryRow(ctx, `
		SELECT count(DISTINCT r.user_id),
		       count(DISTINCT o.user_id),
		       count(DISTINCT o.user_id) FILTER (WHERE o.status IN ('paid', 'fulfilled')),
		       count(DISTINCT o.user_id) FILTER (WHERE o.status = 'fulfilled')
		FROM reservations r LEFT JOIN orders o ON o.id = r.order_id WHERE r.product_id = 'cr'`).
		Scan(&pg.Held, &pg.CheckedOut, &pg.Paid, &pg.Fulfilled); err != nil {
		t.Fatal(err)
	}
	if rep.Funnel != pg {
		t.Errorf("funnel %+v, postgres's orders say %+v", rep.Funnel, pg)
	}
	wantFunnel := shop.Funnel{Held: 4, CheckedOut: 1, Paid: 1, Fulfilled: 1}
	if rep.Funnel != wantFunnel {
		t.Errorf("funnel %+v, the script made %+v", rep.Funnel, wantFunnel)
	}
	wantRefusals := map[shop.Code]int64{shop.CodeOutOfStock: 2, shop.CodeLimitExceeded: 1, shop.CodeNotAdmitted: 0, shop.CodeNotOpen: 0, shop.CodeRateLimited: 0}
	if fmt.Sprint(rep.Refusals) != fmt.Sprint(wantRefusals) {
		t.Errorf("refusals %v, want %v", rep.Refusals, wantRefusals)
	}
	if rep.UnitsSold != 2 || rep.UnitsRefunded != 0 || rep.Shoppers != 4 || rep.PeakReservesPerS != 3 {
		t.Errorf("report %+v: want 2 sold, 0 refunded, 4 shoppers, a peak of 3 a second", rep)
	}
	for name, got := range map[string]*time.Time{"opened_at": rep.OpenedAt, "first_hold_at": rep.FirstHoldAt, "sold_out_at": rep.SoldOutAt} {
		if got == nil || !got.Equal(t0) {
			t.Errorf("%s %v, want %s", name, got, t0)
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "Minutes") {
		t.Errorf("the JSON report carries its minutes: %s", b)
	}
	return string(b)
}

// The waiting room is counted too: first joins (a repeat join is not a new shopper), refusals
// before the opening and without an admitted ticket, and serving; the report's funnel takes
// them from the rolled minutes.
func TestControlRoomCountsTheQueue(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	t0 := env.Clock.Now()
	opens := t0.Add(10 * time.Second)
	if _, err := env.Shop.UpsertProduct(ctx, "crq", shop.ProductInput{Name: "Queued", PriceCents: 100, Currency: "usd",
		Stock: 5, MaxPerUser: 1, OpensAt: &opens, QueueRate: 1}); err != nil {
		t.Fatal(err)
	}
	join := func(user string) {
		t.Helper()
		if _, err := env.Shop.JoinQueue(ctx, user, "crq"); err != nil {
			t.Fatalf("%s joins: %v", user, err)
		}
	}
	join("alice")
	join("bob")
	join("alice") // the same shopper again
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "carol", ProductID: "crq", Quantity: 1}); code(err) != shop.CodeNotOpen {
		t.Fatalf("before the opening: %v", err)
	}
	env.Clock.Advance(10 * time.Second)
	join("dave")
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "erin", ProductID: "crq", Quantity: 1}); code(err) != shop.CodeNotAdmitted {
		t.Fatalf("without a ticket: %v", err)
	}
	live, err := env.Shop.Live(ctx, "crq", 11)
	if err != nil {
		t.Fatal(err)
	}
	first, last := live.Points[0], live.Points[10]
	if first.QueueJoined != 2 || first.NotOpen != 1 || last.QueueJoined != 1 || last.NotAdmitted != 1 {
		t.Errorf("first second %+v, last %+v: want 2 joins and a not_open, then 1 join and a not_admitted", first, last)
	}
	var joined, refused int64
	for _, p := range live.Points {
		joined += p.QueueJoined
		refused += p.NotOpen + p.NotAdmitted
	}
	if joined != 3 || refused != 2 || last.Available != 5 {
		t.Errorf("%d joins, %d refusals, available %d; want 3, 2, 5", joined, refused, last.Available)
	}
	env.Clock.Advance(2 * time.Minute)
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := env.Shop.Report(ctx, "crq")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Funnel.QueueJoined != 3 || rep.Funnel.Admitted > 3 || rep.Refusals[shop.CodeNotOpen] != 1 || rep.Refusals[shop.CodeNotAdmitted] != 1 ||
		rep.OpenedAt == nil || !rep.OpenedAt.Equal(opens) {
		t.Errorf("report %+v", rep)
	}
}

// figures records what a Service reports as CloudWatch figures.
type figures struct {
	mu  sync.Mutex
	got map[string]float64
}

func (f *figures) Figure(productID, name string, v float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.got == nil {
		f.got = map[string]float64{}
	}
	f.got[productID+"/"+name] += v
}

// A hold the gate granted but Postgres never recorded (Postgres down) is taken back: the second
// counts no reserve_ok and no release, and the figures say Reserve5xx, not ReserveOK.
func TestControlRoomUndoneReserveIsNotCounted(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "crundo", 5, 5)
	dead, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	down := shop.NewService(store.New(dead), env.Shop.Gate)
	down.Now, down.Log = env.Clock.Now, env.Shop.Log
	f := &figures{}
	down.Figures = f
	if _, err := down.Reserve(ctx, shop.ReserveRequest{UserID: "a", ProductID: "crundo", Quantity: 2}); code(err) != shop.CodeUnavailable {
		t.Fatalf("reserve with postgres down: %v, want unavailable", err)
	}
	live, err := env.Shop.Live(ctx, "crundo", 1)
	if err != nil {
		t.Fatal(err)
	}
	if p := live.Points[0]; p.ReserveOK != 0 || p.Released != 0 || p.Available != 5 || p.Held != 0 {
		t.Errorf("the undone reserve's second: %+v; want nothing counted, 5 available", p)
	}
	if f.got["crundo/Reserve5xx"] != 1 || f.got["crundo/ReserveOK"] != 0 || f.got["crundo/ReserveLatency"] <= 0 {
		t.Errorf("figures %v: want one Reserve5xx, no ReserveOK, a latency", f.got)
	}
}
