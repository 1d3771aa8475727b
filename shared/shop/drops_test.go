package shop_test

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// dropProduct creates a product with a sale window and a waiting room.
func dropProduct(t *testing.T, env *testenv.Env, id string, units, maxPerUser int64, opens, closes *time.Time, rate int64) {
	t.Helper()
	_, err := env.Shop.UpsertProduct(ctx, id, shop.ProductInput{Name: "Drop " + id, PriceCents: 900, Currency: "usd",
		Stock: units, MaxPerUser: maxPerUser, OpensAt: opens, ClosesAt: closes, QueueRate: rate})
	if err != nil {
		t.Fatalf("create drop %s: %v", id, err)
	}
}

func at(t time.Time) *time.Time { return &t }

func details(err error) map[string]any {
	if e, ok := err.(*shop.Error); ok {
		return e.Details
	}
	return nil
}

// TestSaleWindow: before opens_at and from closes_at on, reserve is not_open (with the time
// in details) and changes nothing; inside the window it holds; a hold taken while open can
// still be checked out after the close. The product reads carry the window.
func TestSaleWindow(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	opens, closes := testenv.Start.Add(time.Hour), testenv.Start.Add(time.Hour+5*time.Minute)
	dropProduct(t, env, "win", 5, 5, &opens, &closes, 0)
	p, err := env.Shop.Product(ctx, "win")
	if err != nil || p.OpensAt == nil || !p.OpensAt.Equal(opens) || !p.ClosesAt.Equal(closes) || p.QueueRate != 0 {
		t.Fatalf("product: %+v, %v", p, err)
	}
	_, err = env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "a", ProductID: "win", Quantity: 1})
	if code(err) != shop.CodeNotOpen || details(err)["opens_at"] == nil {
		t.Fatalf("before the opening: %v", err)
	}
	env.CheckLedger(t, "win", 5)
	env.Clock.Advance(time.Hour) // exactly opens_at: open
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "a", ProductID: "win", Quantity: 2}); err != nil {
		t.Fatalf("at the opening: %v", err)
	}
	env.Clock.Advance(5 * time.Minute) // exactly closes_at: closed
	_, err = env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "b", ProductID: "win", Quantity: 1})
	if code(err) != shop.CodeNotOpen || details(err)["closes_at"] == nil {
		t.Fatalf("at the close: %v", err)
	}
	if _, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "a"}); err != nil {
		t.Fatalf("checking out a hold taken while open: %v", err)
	}
	// The window survives a gate lost with Redis (rebuilt from Postgres).
	if err := env.Shop.Gate.Invalidate(ctx, "win", 1<<62); err != nil {
		t.Fatal(err)
	}
	_, err = env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "b", ProductID: "win", Quantity: 1})
	if code(err) != shop.CodeNotOpen {
		t.Fatalf("after a rebuild: %v", err)
	}
	env.CheckLedger(t, "win", 5)
}

// TestDropBadInput: closes_at not after opens_at, queue_rate outside 0..10000, and a queue
// call for a product without a waiting room are refused and change nothing.
func TestDropBadInput(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "plain", 3, 3)
	base := shop.ProductInput{Name: "x", PriceCents: 1, Currency: "usd", Stock: 9, MaxPerUser: 1}
	for _, tc := range []struct {
		name  string
		in    func(shop.ProductInput) shop.ProductInput
		field string
	}{
		{"closes before opens", func(in shop.ProductInput) shop.ProductInput {
			in.OpensAt, in.ClosesAt = at(testenv.Start.Add(time.Hour)), at(testenv.Start)
			return in
		}, "closes_at"},
		{"closes at opens", func(in shop.ProductInput) shop.ProductInput {
			in.OpensAt, in.ClosesAt = at(testenv.Start), at(testenv.Start)
			return in
		}, "closes_at"},
		{"negative rate", func(in shop.ProductInput) shop.ProductInput { in.QueueRate = -1; return in }, "queue_rate"},
		{"rate too high", func(in shop.ProductInput) shop.ProductInput { in.QueueRate = 10001; return in }, "queue_rate"},
	} {
		_, err := env.Shop.UpsertProduct(ctx, "plain", tc.in(base))
		if code(err) != shop.CodeInvalidRequest || details(err)["field"] != tc.field {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if p, err := env.Shop.Product(ctx, "plain"); err != nil || p.Name != "Product plain" || p.Available != 3 {
		t.Fatalf("bad input changed the product: %+v, %v", p, err)
	}
	if _, err := env.Shop.JoinQueue(ctx, "a", "plain"); code(err) != shop.CodeInvalidState {
		t.Fatalf("join without a waiting room: %v", err)
	}
	if _, err := env.Shop.QueueTicket(ctx, "a", "plain"); code(err) != shop.CodeInvalidState {
		t.Fatalf("ticket without a waiting room: %v", err)
	}
	if _, err := env.Shop.JoinQueue(ctx, "a", "nope"); code(err) != shop.CodeNotFound {
		t.Fatalf("join an unknown product: %v", err)
	}
	if keys, _ := env.Redis.Keys(ctx, "{p:plain}:q*").Result(); len(keys) != 0 {
		t.Fatalf("a refused queue call wrote %v", keys)
	}
}

// TestShuffleIsFair opens the same pre-queue of k shoppers many times, each opening with its
// own (deterministic) seed, and checks with a chi-square test that each shopper's place is
// uniform over 1..k: joining earlier gives no advantage. Significance 1e-4 per shopper
// (critical value 23.51 for 4 degrees of freedom); the seeds are fixed, so the verdict is too.
func TestShuffleIsFair(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	opens := testenv.Start.Add(time.Minute)
	dropProduct(t, env, "fair", 100, 1, &opens, nil, 10)
	g := env.Shop.Gate
	const k, openings = 5, 2000
	var counts [k][k]int
	for o := 0; o < openings; o++ {
		if err := env.Redis.Del(ctx, stock.QueueKeys("fair")...).Err(); err != nil {
			t.Fatal(err)
		}
		seed := fmt.Sprintf("%032x", o)
		for u := 0; u < k; u++ {
			c := shop.QueueCall{Op: shop.QueueJoin, ProductID: "fair", UserID: fmt.Sprint("u", u), Now: testenv.Start.Add(time.Duration(u) * time.Second), Seed: seed, Window: time.Minute}
			if r, err := g.Queue(ctx, c); err != nil || r.Ticket.Number != nil {
				t.Fatalf("join before the opening: %+v, %v", r, err)
			}
		}
		for u := 0; u < k; u++ {
			c := shop.QueueCall{Op: shop.QueueGet, ProductID: "fair", UserID: fmt.Sprint("u", u), Now: opens, Seed: seed, Window: time.Minute}
			r, err := g.Queue(ctx, c)
			if err != nil || r.Ticket.Number == nil || *r.Ticket.Number < 1 || *r.Ticket.Number > k {
				t.Fatalf("after the opening: %+v, %v", r, err)
			}
			counts[u][*r.Ticket.Number-1]++
		}
	}
	exp := float64(openings) / k
	for u := 0; u < k; u++ {
		chi := 0.0
		for p := 0; p < k; p++ {
			d := float64(counts[u][p]) - exp
			chi += d * d / exp
		}
		t.Logf("shopper %d (joined %d s before the opening): places %v, chi-square %.2f", u, k-u, counts[u], chi)
		if chi > 23.51 {
			t.Errorf("shopper %d's places are not uniform: %v (chi-square %.2f > 23.51)", u, counts[u], chi)
		}
	}
}

// TestThousandJoinInTheOpeningSecond: 1000 shoppers join in the same second while the clock
// crosses opens_at among them: the pre-queue is shuffled once, later arrivals are numbered
// after it, and every number 1..1000 is given exactly once.
func TestThousandJoinInTheOpeningSecond(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	opens := testenv.Start.Add(500 * time.Millisecond)
	dropProduct(t, env, "rush", 10, 1, &opens, nil, 50)
	const n = 1000
	var mu sync.Mutex
	var numbered, before, joined atomic.Int64
	quarter := make(chan struct{})
	hammer(n, func(i int) {
		if i == n/2 {
			<-quarter
			env.Clock.Advance(700 * time.Millisecond) // the opening passes while they join
		}
		tk, err := env.Shop.JoinQueue(ctx, fmt.Sprint("s", i), "rush")
		if joined.Add(1) == n/4 {
			close(quarter)
		}
		if err != nil {
			t.Errorf("join %d: %v", i, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if tk.Number == nil {
			before.Add(1)
		} else {
			numbered.Add(1)
		}
	})
	seen := make(map[int64]string, n)
	for i := 0; i < n; i++ {
		tk, err := env.Shop.QueueTicket(ctx, fmt.Sprint("s", i), "rush")
		if err != nil || tk.Number == nil {
			t.Fatalf("ticket %d after the opening: %+v, %v", i, tk, err)
		}
		if other, dup := seen[*tk.Number]; dup {
			t.Fatalf("number %d given to %s and s%d", *tk.Number, other, i)
		}
		seen[*tk.Number] = fmt.Sprint("s", i)
	}
	for k := int64(1); k <= n; k++ {
		if _, ok := seen[k]; !ok {
			t.Fatalf("number %d was never given", k)
		}
	}
	q, err := env.Redis.HGetAll(ctx, stock.QueueKeys("rush")[0]).Result()
	if err != nil || q["m"] != fmt.Sprint(n) || q["open"] != fmt.Sprint(opens.UnixMilli()) {
		t.Fatalf("queue state %v, %v", q, err)
	}
	if l, _ := env.Redis.LLen(ctx, stock.QueueKeys("rush")[2]).Result(); l != 0 {
		t.Fatalf("%d shoppers left in the pre-queue", l)
	}
	t.Logf("%d joined before the opening (shuffled), %d after (in arrival order)", before.Load(), numbered.Load())
}

// TestAdmissionUnderContention: 200 queued shoppers hammer reserve once serving has reached
// 3: only admitted tickets (numbers 1..3) ever hold a unit, in Redis and in Postgres.
func TestAdmissionUnderContention(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	opens := testenv.Start.Add(time.Minute)
	dropProduct(t, env, "adm", 50, 2, &opens, nil, 1)
	const n = 200
	hammer(n, func(i int) {
		if _, err := env.Shop.JoinQueue(ctx, fmt.Sprint("s", i), "adm"); err != nil {
			t.Errorf("join: %v", err)
		}
	})
	_, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "s0", ProductID: "adm", Quantity: 1})
	if code(err) != shop.CodeNotOpen {
		t.Fatalf("before the opening: %v", err)
	}
	env.Clock.Advance(time.Minute + 3*time.Second)
	var ok, refused atomic.Int64
	hammer(n, func(i int) {
		_, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: fmt.Sprint("s", i), ProductID: "adm", Quantity: 1})
		switch code(err) {
		case "":
			ok.Add(1)
		case shop.CodeNotAdmitted:
			if a, _ := details(err)["ahead"].(int64); a < 1 {
				t.Errorf("not admitted with ahead %v", details(err)["ahead"])
			}
			refused.Add(1)
		default:
			t.Errorf("reserve: %v", err)
		}
	})
	admitted := map[string]bool{}
	for i := 0; i < n; i++ {
		tk, err := env.Shop.QueueTicket(ctx, fmt.Sprint("s", i), "adm")
		if err != nil {
			t.Fatal(err)
		}
		if tk.State == shop.TicketAdmitted {
			admitted[fmt.Sprint("s", i)] = true
			if *tk.Number > 3 || tk.AdmittedUntil == nil {
				t.Fatalf("admitted ticket %+v", tk)
			}
		}
	}
	if len(admitted) != 3 || ok.Load() != 3 || refused.Load() != n-3 {
		t.Fatalf("%d admitted, %d held, %d refused", len(admitted), ok.Load(), refused.Load())
	}
	rows, err := env.Pool.Query(ctx, `SELECT user_id FROM reservations WHERE product_id = 'adm'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			t.Fatal(err)
		}
		if !admitted[u] {
			t.Fatalf("%s holds a unit without an admitted ticket", u)
		}
	}
	env.CheckLedger(t, "adm", 50)
	// The admission window runs out 2 minutes after the number was reached.
	env.Clock.Advance(2 * time.Minute)
	for u := range admitted {
		if tk, _ := env.Shop.QueueTicket(ctx, u, "adm"); tk.State != shop.TicketAdmitted && tk.State != shop.TicketExpired {
			t.Fatalf("ticket %+v", tk)
		}
	}
}

// TestQueuePausesAtSoldOutAndResumes: with the last unit held, serving stops and waiting
// tickets read sold_out; when the hold expires and its unit returns, admission resumes where
// it stopped, and a ticket's window counts from when its number was really reached.
func TestQueuePausesAtSoldOutAndResumes(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Shop.AdmissionWindow = time.Hour // longer than the hold, so #1 stays admitted
	opens := testenv.Start.Add(time.Minute)
	dropProduct(t, env, "pause", 1, 1, &opens, nil, 1)
	users := []string{"a", "b", "c"}
	for _, u := range users {
		if _, err := env.Shop.JoinQueue(ctx, u, "pause"); err != nil {
			t.Fatal(err)
		}
	}
	env.Clock.Advance(time.Minute + time.Second) // serving 1
	byNumber := map[int64]string{}
	for _, u := range users {
		tk, err := env.Shop.QueueTicket(ctx, u, "pause")
		if err != nil {
			t.Fatal(err)
		}
		byNumber[*tk.Number] = u
	}
	first, second := byNumber[1], byNumber[2]
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: first, ProductID: "pause", Quantity: 1}); err != nil {
		t.Fatalf("the first admitted shopper: %v", err)
	}
	env.Clock.Advance(5 * time.Minute)
	tk, err := env.Shop.QueueTicket(ctx, second, "pause")
	if err != nil || tk.State != shop.TicketSoldOut || tk.Serving != 1 || *tk.Ahead != 1 {
		t.Fatalf("while sold out: %+v, %v", tk, err)
	}
	env.Clock.Advance(6 * time.Minute) // the hold expires
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	resumed := env.Clock.Now()
	if tk, _ := env.Shop.QueueTicket(ctx, second, "pause"); tk.State != shop.TicketWaiting || tk.Serving != 1 {
		t.Fatalf("after the unit came back: %+v", tk)
	}
	env.Clock.Advance(1500 * time.Millisecond)
	tk, err = env.Shop.QueueTicket(ctx, second, "pause")
	if err != nil || tk.State != shop.TicketAdmitted || tk.Serving != 2 {
		t.Fatalf("after resuming: %+v, %v", tk, err)
	}
	if want := resumed.Add(time.Second + time.Hour); !tk.AdmittedUntil.Equal(want) {
		t.Fatalf("admitted until %v, want %v (reached 1 s after resuming)", tk.AdmittedUntil, want)
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: second, ProductID: "pause", Quantity: 1}); err != nil {
		t.Fatalf("the second shopper after resuming: %v", err)
	}
	env.CheckLedger(t, "pause", 1)
}

// TestAdmissionExpiresAndRejoinsAtTheBack: after the window a ticket reads expired, reserve
// is not_admitted, and joining again gives a new number at the back.
func TestAdmissionExpiresAndRejoinsAtTheBack(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	dropProduct(t, env, "late", 10, 1, nil, nil, 1) // open from creation
	for _, u := range []string{"a", "b", "c"} {
		if _, err := env.Shop.JoinQueue(ctx, u, "late"); err != nil {
			t.Fatal(err)
		}
	}
	env.Clock.Advance(3 * time.Second)
	tk, _ := env.Shop.QueueTicket(ctx, "a", "late")
	if tk.State != shop.TicketAdmitted || *tk.Number != 1 {
		t.Fatalf("a: %+v", tk)
	}
	env.Clock.Advance(2 * time.Minute)
	if tk, _ := env.Shop.QueueTicket(ctx, "a", "late"); tk.State != shop.TicketExpired {
		t.Fatalf("after the window: %+v", tk)
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "a", ProductID: "late", Quantity: 1}); code(err) != shop.CodeNotAdmitted {
		t.Fatalf("reserve after the window: %v", err)
	}
	tk, err := env.Shop.JoinQueue(ctx, "a", "late")
	if err != nil || *tk.Number != 4 || tk.State != shop.TicketWaiting {
		t.Fatalf("rejoined: %+v, %v", tk, err)
	}
}

// TestLimitCountsPurchases: max_per_user covers live holds plus paid and fulfilled units,
// through checkout, payment, fulfillment and a gate rebuild; a refunded (cancelled) order
// gives the shopper's units back.
func TestLimitCountsPurchases(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Shop.Dead = env.Queue
	env.Product(t, "lim", 10, 2)
	limited := func(user string, what string) {
		t.Helper()
		_, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: user, ProductID: "lim", Quantity: 1})
		if code(err) != shop.CodeLimitExceeded {
			t.Fatalf("%s: a third unit for %s: %v", what, user, err)
		}
	}
	o := paidOrder(t, env, "alice", "lim", 2)
	limited("alice", "paid")
	if err := env.Shop.Fulfill(ctx, o.ID, 1); err != nil {
		t.Fatal(err)
	}
	limited("alice", "fulfilled")
	env.CheckLedger(t, "lim", 10)
	if err := env.Shop.Gate.Invalidate(ctx, "lim", 1<<62); err != nil { // Redis lost the gate
		t.Fatal(err)
	}
	limited("alice", "after a rebuild")
	env.CheckLedger(t, "lim", 10)

	// bob pays, his fulfillment fails for good, an admin cancels and refunds: free again.
	fail := failing(env)
	fail.Store(true)
	ob := paidOrder(t, env, "bob", "lim", 2)
	limited("bob", "paid")
	for attempt := 1; attempt <= shop.MaxAttempts; attempt++ {
		_ = env.Shop.Fulfill(ctx, ob.ID, attempt)
	}
	if c, err := env.Shop.CancelJob(ctx, ob.ID); err != nil || c.Status != shop.OrderCancelled {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "bob", ProductID: "lim", Quantity: 1}); err != nil {
			t.Fatalf("bob after the refund: %v", err)
		}
	}
	limited("bob", "after the refund and two new holds")
	env.CheckLedger(t, "lim", 10)
}

// TestRateHoldsAcrossInstances: three services with their own Redis clients (three function
// instances) share one shopper's bucket: of 30 reserves at the same instant 10 (the burst)
// pass; the others are rate_limited with a retry time and change nothing. Checkout and the
// queue draw from the same bucket, and a second later 5 more pass.
func TestRateHoldsAcrossInstances(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "rate", 1000, 1000)
	dropProduct(t, env, "rq", 10, 1, nil, nil, 5)
	var svcs []*shop.Service
	for i := 0; i < 3; i++ {
		rdb := redis.NewClient(env.Redis.Options())
		t.Cleanup(func() { rdb.Close() })
		s := shop.NewService(store.New(env.Pool), stock.New(rdb))
		s.Now, s.Log = env.Clock.Now, env.Shop.Log
		svcs = append(svcs, s)
	}
	var ok, limited atomic.Int64
	hammer(30, func(i int) {
		_, err := svcs[i%3].Reserve(ctx, shop.ReserveRequest{UserID: "bot", ProductID: "rate", Quantity: 1})
		switch code(err) {
		case "":
			ok.Add(1)
		case shop.CodeRateLimited:
			if s, _ := details(err)["retry_after"].(int64); s < 1 {
				t.Errorf("retry_after %v", details(err)["retry_after"])
			}
			limited.Add(1)
		default:
			t.Errorf("reserve: %v", err)
		}
	})
	if ok.Load() != 10 || limited.Load() != 20 {
		t.Fatalf("%d passed, %d limited; want 10 and 20", ok.Load(), limited.Load())
	}
	if l := env.CheckLedger(t, "rate", 1000); l.HeldPG != 10 {
		t.Fatalf("%d units held", l.HeldPG)
	}
	if _, err := svcs[0].Checkout(ctx, shop.CheckoutRequest{UserID: "bot"}); code(err) != shop.CodeRateLimited {
		t.Fatalf("checkout with an empty bucket: %v", err)
	}
	if _, err := svcs[1].JoinQueue(ctx, "bot", "rq"); code(err) != shop.CodeRateLimited {
		t.Fatalf("join with an empty bucket: %v", err)
	}
	if n, _ := env.Redis.HLen(ctx, stock.QueueKeys("rq")[1]).Result(); n != 0 {
		t.Fatalf("a limited join left %d tickets", n)
	}
	// Another shopper has their own bucket.
	if _, err := svcs[2].Reserve(ctx, shop.ReserveRequest{UserID: "human", ProductID: "rate", Quantity: 1}); err != nil {
		t.Fatalf("another shopper: %v", err)
	}
	env.Clock.Advance(time.Second)
	ok.Store(0)
	hammer(9, func(i int) {
		if _, err := svcs[i%3].Reserve(ctx, shop.ReserveRequest{UserID: "bot", ProductID: "rate", Quantity: 1}); err == nil {
			ok.Add(1)
		}
	})
	if ok.Load() != 5 {
		t.Fatalf("a second later %d passed; want 5 (the rate)", ok.Load())
	}
	var ids []string
	for id := range env.ReadLedger(t, "rate").HoldsPG {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) != 16 {
		t.Fatalf("%d holds", len(ids))
	}
}

// TestOpeningMovedLaterKeepsTheFairStart: an operator creates a waiting room with no opening,
// the dashboard looks at it (which opens it), then sets an opening an hour ahead. Shoppers who
// join now wait unnumbered for that opening, as the fair start says, instead of being
// numbered in arrival order and expiring before the sale opens.
func TestOpeningMovedLaterKeepsTheFairStart(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	dropProduct(t, env, "moved", 5, 1, nil, nil, 1)
	early, err := env.Shop.JoinQueue(ctx, "early", "moved") // opens the queue at once
	if err != nil || early.Number == nil {
		t.Fatalf("a queue with no opening opens at the first touch: %+v %v", early, err)
	}
	opens := env.Clock.Now().Add(time.Hour)
	dropProduct(t, env, "moved", 5, 1, &opens, nil, 1)
	for _, u := range []string{"a", "b", "c"} {
		tk, err := env.Shop.JoinQueue(ctx, u, "moved")
		if err != nil || tk.Number != nil || tk.State != "waiting" {
			t.Fatalf("%s joins before the new opening: %+v %v, want waiting with no number", u, tk, err)
		}
	}
	if tk, err := env.Shop.QueueTicket(ctx, "early", "moved"); err != nil || tk.Number != nil {
		t.Fatalf("the early ticket waits for the new opening too: %+v %v", tk, err)
	}
	env.Clock.Advance(time.Hour + time.Second)
	seen := map[int64]bool{}
	for _, u := range []string{"early", "a", "b", "c"} {
		tk, err := env.Shop.QueueTicket(ctx, u, "moved")
		if err != nil || tk.Number == nil || *tk.Number < 1 || *tk.Number > 4 || seen[*tk.Number] {
			t.Fatalf("%s after the opening: %+v %v, want one of the numbers 1..4", u, tk, err)
		}
		seen[*tk.Number] = true
	}
}
