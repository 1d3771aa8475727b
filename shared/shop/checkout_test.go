package shop_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/redis/go-redis/v9"

	"lastunit/shared/payment"
	"lastunit/shared/queue"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// commandCounter counts the Redis commands sent while it is on.
type commandCounter struct {
	on       atomic.Bool
	commands atomic.Int64
	scripts  atomic.Int64
}

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if c.on.Load() {
			c.commands.Add(1)
			if n := strings.ToLower(cmd.Name()); n == "evalsha" || n == "eval" {
				c.scripts.Add(1)
			}
		}
		return next(ctx, cmd)
	}
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if c.on.Load() {
			c.commands.Add(int64(len(cmds)))
		}
		return next(ctx, cmds)
	}
}

func reserveN(t *testing.T, env *testenv.Env, user string, products ...string) []string {
	t.Helper()
	ids := make([]string, len(products))
	for i, p := range products {
		r, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: user, ProductID: p, Quantity: 1})
		if err != nil {
			t.Fatalf("reserve %s: %v", p, err)
		}
		ids[i] = r.ID
	}
	return ids
}

// lapsedOrder has user check out one unit of each product, then lets the payment deadline
// pass and sweeps: the order is expired and its units are back, as a late payment finds it.
func lapsedOrder(t *testing.T, env *testenv.Env, user string, products ...string) shop.Order {
	t.Helper()
	reserveN(t, env, user, products...)
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: user})
	if err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(env.Shop.PaymentWindow + time.Millisecond)
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	return o
}

func orderStatus(t *testing.T, env *testenv.Env, id string) string {
	t.Helper()
	var st string
	if err := env.Pool.QueryRow(ctx, `SELECT status FROM orders WHERE id = $1`, id).Scan(&st); err != nil {
		t.Fatalf("order %s: %v", id, err)
	}
	return st
}

func holdStates(t *testing.T, env *testenv.Env, ids []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	rows, err := env.Pool.Query(ctx, `SELECT id, status FROM reservations WHERE id = ANY($1)`, ids)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, st string
		rows.Scan(&id, &st)
		out[id] = st
	}
	return out
}

func queued(t *testing.T, q *queue.Queue) int {
	t.Helper()
	url, err := q.URL(ctx, queue.Fulfill)
	if err != nil {
		t.Fatal(err)
	}
	out, err := q.Client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, v := range out.Attributes {
		var x int
		fmt.Sscan(v, &x)
		n += x
	}
	return n
}

func TestCheckoutTwentyItemsInOneRedisCall(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	var products []string
	for i := 0; i < 20; i++ {
		p := fmt.Sprintf("item-%02d", i)
		env.Product(t, p, 5, 5)
		products = append(products, p)
	}
	// Warm the script cache, as any running system has it.
	warm := reserveN(t, env, "warm", "item-00")
	if _, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "warm", ReservationIDs: warm}); err != nil {
		t.Fatal(err)
	}
	ids := reserveN(t, env, "alice", products...)
	counter := &commandCounter{}
	env.Redis.AddHook(counter)
	counter.on.Store(true)
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", ReservationIDs: ids})
	counter.on.Store(false)
	if err != nil {
		t.Fatal(err)
	}
	if counter.commands.Load() != 1 || counter.scripts.Load() != 1 {
		t.Fatalf("checkout of 20 items sent %d Redis commands (%d scripts); want exactly 1 script call", counter.commands.Load(), counter.scripts.Load())
	}
	if len(o.Items) != 20 || o.AmountCents != 20*1500 || o.Status != shop.OrderPaymentPending || o.PaymentIntentID == nil || o.ClientSecret == nil {
		t.Fatalf("order %+v", o)
	}
	if !o.PaymentExpiresAt.Equal(testenv.Start.Add(15 * time.Minute)) {
		t.Fatalf("payment deadline %v", o.PaymentExpiresAt)
	}
	for id, st := range holdStates(t, env, ids) {
		if st != shop.StatusCheckedOut {
			t.Errorf("hold %s is %s", id, st)
		}
	}
	for _, p := range products {
		env.CheckLedger(t, p, 5)
	}
	// The checked-out holds outlive their reservation deadline: the sweep leaves them.
	env.Clock.Advance(11 * time.Minute)
	if rep, err := env.Shop.Sweep(ctx); err != nil || rep.Expired != 0 || rep.UnitsFreed != 0 {
		t.Fatalf("sweep after the hold deadline: %+v, %v", rep, err)
	}
	// The owner sees the client secret; an admin does not; another shopper gets 404.
	if got, err := env.Shop.GetOrder(ctx, "alice", false, o.ID); err != nil || got.ClientSecret == nil {
		t.Fatalf("owner: %+v, %v", got, err)
	}
	if got, err := env.Shop.GetOrder(ctx, "ada", true, o.ID); err != nil || got.ClientSecret != nil {
		t.Fatalf("admin: %+v, %v", got, err)
	}
	if _, err := env.Shop.GetOrder(ctx, "bob", false, o.ID); code(err) != shop.CodeNotFound {
		t.Fatalf("another shopper: %v", err)
	}
}

func TestCheckoutWithAnExpiredHoldChangesNothing(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	for _, p := range []string{"a", "b", "c"} {
		env.Product(t, p, 3, 3)
	}
	old := reserveN(t, env, "alice", "a")
	env.Clock.Advance(6 * time.Minute)
	fresh := reserveN(t, env, "alice", "b", "c")
	env.Clock.Advance(5 * time.Minute) // "a" is past its deadline, not yet swept
	before := map[string]testenv.Ledger{}
	for _, p := range []string{"a", "b", "c"} {
		before[p] = env.ReadLedger(t, p)
	}
	all := append(append([]string{}, old...), fresh...)
	_, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", ReservationIDs: all})
	if code(err) != shop.CodeReservationExpired {
		t.Fatalf("checkout: %v, want reservation_expired", err)
	}
	if got := err.(*shop.Error).Details["reservation_ids"].([]string); len(got) != 1 || got[0] != old[0] {
		t.Fatalf("named %v, want only %s", got, old[0])
	}
	// Someone else's hold is listed too, and reveals nothing more.
	bobs := reserveN(t, env, "bob", "b")
	_, err = env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", ReservationIDs: append(fresh, bobs...)})
	if got := err.(*shop.Error).Details["reservation_ids"].([]string); len(got) != 1 || got[0] != bobs[0] {
		t.Fatalf("named %v, want only bob's %s", got, bobs[0])
	}
	for id, st := range holdStates(t, env, all) {
		if st != shop.StatusReserved {
			t.Errorf("hold %s became %s", id, st)
		}
	}
	var orders int
	env.Pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&orders)
	if orders != 0 {
		t.Fatalf("%d orders written", orders)
	}
	for _, p := range []string{"a", "c"} {
		if after := env.ReadLedger(t, p); after.Available != before[p].Available || len(after.HoldsRedis) != len(before[p].HoldsRedis) {
			t.Errorf("%s changed: %+v → %+v", p, before[p], after)
		}
	}
	// Without the expired hold the rest checks out.
	if _, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", ReservationIDs: fresh}); err != nil {
		t.Fatalf("checkout of the live holds: %v", err)
	}
}

func TestStripeDownPutsEverythingBack(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "x", 5, 5)
	env.Product(t, "y", 5, 5)
	ids := reserveN(t, env, "alice", "x", "y")
	var deadlines = map[string]time.Time{}
	rows, _ := env.Pool.Query(ctx, `SELECT id, expires_at FROM reservations WHERE id = ANY($1)`, ids)
	for rows.Next() {
		var id string
		var at time.Time
		rows.Scan(&id, &at)
		deadlines[id] = at
	}
	before := env.ReadLedger(t, "x")
	env.Shop.Pay = payment.New(payment.Config{SecretKey: "sk_test", APIBase: "http://127.0.0.1:1", Timeout: time.Second})
	_, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", IdemKey: "pay-1"})
	if code(err) != shop.CodePaymentProviderError {
		t.Fatalf("checkout with stripe down: %v, want payment_provider_error", err)
	}
	rows, _ = env.Pool.Query(ctx, `SELECT id, status, expires_at, order_id FROM reservations WHERE id = ANY($1)`, ids)
	for rows.Next() {
		var id, st string
		var at time.Time
		var order *string
		rows.Scan(&id, &st, &at, &order)
		if st != shop.StatusReserved || !at.Equal(deadlines[id]) || order != nil {
			t.Errorf("hold %s after compensation: %s, deadline %v (was %v), order %v", id, st, at, deadlines[id], order)
		}
	}
	var orders int
	env.Pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&orders)
	if orders != 0 {
		t.Fatalf("%d orders left behind", orders)
	}
	if after := env.CheckLedger(t, "x", 5); after.Available != before.Available {
		t.Fatalf("available %d, was %d", after.Available, before.Available)
	}
	// The gate has them reserved with their old deadlines again: the sweep expires them on time.
	state, _ := env.Redis.HGet(ctx, "{p:x}:holds", ids[0]).Result()
	if !strings.Contains(state, ":reserved:") || !strings.Contains(state, fmt.Sprint(deadlines[ids[0]].UnixMilli())) {
		t.Fatalf("gate hold after compensation: %q", state)
	}
	env.Shop.Pay = env.Stripe
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", IdemKey: "pay-1"})
	if err != nil || len(o.Items) != 2 {
		t.Fatalf("retry after stripe is back: %+v, %v", o, err)
	}
	again, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", IdemKey: "pay-1"})
	if err != nil || again.ID != o.ID {
		t.Fatalf("same key again: %+v, %v; want order %s", again, err, o.ID)
	}
}

func TestCheckoutIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "k", 5, 5)
	ids := reserveN(t, env, "alice", "k", "k")
	got, secrets := make([]string, 10), make([]string, 10)
	hammer(10, func(i int) {
		o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", ReservationIDs: ids, IdemKey: "cart-1"})
		if err != nil {
			t.Errorf("checkout %d: %v", i, err)
			return
		}
		got[i] = o.ID
		if o.ClientSecret != nil {
			secrets[i] = *o.ClientSecret
		}
	})
	for i := range got {
		if got[i] == "" || got[i] != got[0] {
			t.Fatalf("answers %v: one key must make one order", got)
		}
		if secrets[i] == "" || secrets[i] != secrets[0] {
			t.Fatalf("client secrets %q: every answer (first or replay) carries the order's", secrets)
		}
	}
	if _, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", ReservationIDs: ids[:1], IdemKey: "cart-1"}); code(err) != shop.CodeIdempotencyConflict {
		t.Fatalf("same key, other cart: %v", err)
	}
}

// TestCheckoutReplayKeepsNoSecretAtRest: the idempotency record stores the checkout answer
// without its client secret; a replay gets the secret back from the order row while the
// order waits for payment, and not once it is paid.
func TestCheckoutReplayKeepsNoSecretAtRest(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "s", 5, 5)
	reserveN(t, env, "alice", "s")
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", IdemKey: "secret-1"})
	if err != nil || o.ClientSecret == nil || *o.ClientSecret == "" {
		t.Fatalf("checkout: %+v %v; want a client secret", o, err)
	}
	secret := *o.ClientSecret
	stored := func() string {
		t.Helper()
		var body []byte
		if err := env.Pool.QueryRow(ctx, `SELECT body FROM idempotency_keys WHERE user_id = 'alice' AND key = 'secret-1'`).Scan(&body); err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
	if b := stored(); strings.Contains(b, secret) || strings.Contains(b, "client_secret") || !strings.Contains(b, o.ID) {
		t.Fatalf("the stored replay %s holds the client secret (or not the order)", b)
	}
	again, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", IdemKey: "secret-1"})
	if err != nil || again.ID != o.ID || again.ClientSecret == nil || *again.ClientSecret != secret {
		t.Fatalf("replay while payment_pending: %+v %v; want order %s with its secret", again, err, o.ID)
	}
	// Another shopper's same key is another record: it never replays alice's order.
	if other, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "mallory", IdemKey: "secret-1"}); err == nil || other.ID == o.ID {
		t.Fatalf("another shopper with alice's key: %+v %v", other, err)
	}
	if err := env.Shop.HandlePaymentEvent(ctx, succeeded(o, "evt_secret_1")); err != nil {
		t.Fatal(err)
	}
	if st := orderStatus(t, env, o.ID); st == shop.OrderPaymentPending {
		t.Fatalf("order still %s after payment", st)
	}
	paid, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice", IdemKey: "secret-1"})
	if err != nil || paid.ID != o.ID || paid.ClientSecret != nil {
		t.Fatalf("replay after payment: %+v %v; want order %s without a secret", paid, err, o.ID)
	}
	if b := stored(); strings.Contains(b, secret) {
		t.Fatalf("the stored replay %s holds the client secret", b)
	}
}

// webhookDeliveries delivers the same signed event n times, half of them at once.
func deliver(t *testing.T, env *testenv.Env, ev shop.PaymentEvent, n int) {
	t.Helper()
	hammer(n/2, func(int) {
		if err := env.Shop.HandlePaymentEvent(ctx, ev); err != nil {
			t.Errorf("deliver: %v", err)
		}
	})
	for i := n / 2; i < n; i++ {
		if err := env.Shop.HandlePaymentEvent(ctx, ev); err != nil {
			t.Errorf("deliver: %v", err)
		}
	}
}

func succeeded(o shop.Order, eventID string) shop.PaymentEvent {
	return shop.PaymentEvent{ID: eventID, Type: shop.EventPaymentSucceeded, PaymentIntentID: *o.PaymentIntentID, OrderID: o.ID, AmountCents: o.AmountCents, Currency: o.Currency}
}

func TestSameSuccessEventEightTimes(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "e", 5, 5)
	reserveN(t, env, "alice", "e")
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, env, succeeded(o, "evt_1"), 8)
	if st := orderStatus(t, env, o.ID); st != shop.OrderPaid {
		t.Fatalf("order is %s", st)
	}
	// At most one job per delivery that arrived before the first one was recorded: here the
	// four concurrent ones; the four sequential ones after it queue nothing.
	if n := queued(t, env.Queue); n < 1 || n > 4 {
		t.Fatalf("%d fulfill jobs queued for 8 deliveries; want 1 to 4", n)
	}
	// A different event id for the same payment (Stripe resends) queues at most one more.
	before := queued(t, env.Queue)
	deliver(t, env, succeeded(o, "evt_2"), 2)
	if n := queued(t, env.Queue); n > before+1 {
		t.Fatalf("%d jobs after a second event id, %d before", n, before)
	}
	// A wrong amount is refunded and the order ends, its units back.
	bad := succeeded(o, "evt_3")
	bad.AmountCents++
	env.Product(t, "f", 5, 5)
	reserveN(t, env, "bob", "f")
	ob, _ := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "bob"})
	bad = succeeded(ob, "evt_4")
	bad.AmountCents = 1
	if err := env.Shop.HandlePaymentEvent(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if st := orderStatus(t, env, ob.ID); st != shop.OrderRefunded {
		t.Fatalf("an underpaid order is %s, want refunded", st)
	}
	if l := env.CheckLedger(t, "f", 5); l.Available != 5 {
		t.Fatalf("the underpaid order kept its units: available %d", l.Available)
	}
	// An unknown PaymentIntent is acknowledged and changes nothing.
	if err := env.Shop.HandlePaymentEvent(ctx, shop.PaymentEvent{ID: "evt_5", Type: shop.EventPaymentSucceeded, PaymentIntentID: "pi_unknown", AmountCents: 1, Currency: "usd"}); err != nil {
		t.Fatal(err)
	}
	env.CheckLedger(t, "e", 5)
}

func TestPaymentDeadlineCancelsAndReleasesOnce(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "d", 4, 4)
	reserveN(t, env, "alice", "d", "d")
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(14 * time.Minute)
	if rep, _ := env.Shop.Sweep(ctx); rep.OrdersExpired != 0 {
		t.Fatalf("expired before the deadline: %+v", rep)
	}
	env.Clock.Advance(time.Minute + time.Millisecond)
	var expired, freed atomic.Int64
	hammer(3, func(int) {
		rep, err := env.Shop.Sweep(ctx)
		if err != nil {
			t.Errorf("sweep: %v", err)
		}
		expired.Add(int64(rep.OrdersExpired))
		freed.Add(int64(rep.UnitsFreed))
	})
	if expired.Load() != 1 {
		t.Fatalf("order expired %d times", expired.Load())
	}
	if st := orderStatus(t, env, o.ID); st != shop.OrderExpired {
		t.Fatalf("order is %s", st)
	}
	if l := env.CheckLedger(t, "d", 4); l.Available != 4 {
		t.Fatalf("available %d after the payment deadline, want 4", l.Available)
	}
	if got, _ := env.Shop.GetOrder(ctx, "alice", false, o.ID); got.ClientSecret != nil {
		t.Fatal("an expired order still shows its client secret")
	}
}

func TestLatePaymentTakesUnitsAgainOrRefunds(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "late", 3, 3)
	reserveN(t, env, "alice", "late", "late")
	o1, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(15*time.Minute + time.Millisecond)
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if st := orderStatus(t, env, o1.ID); st != shop.OrderExpired {
		t.Fatalf("order is %s", st)
	}
	// Units still there: the order takes them again and is paid.
	deliver(t, env, succeeded(o1, "evt_late_1"), 4)
	if st := orderStatus(t, env, o1.ID); st != shop.OrderPaid {
		t.Fatalf("late payment with units left: order is %s", st)
	}
	if l := env.CheckLedger(t, "late", 3); l.Available != 1 || l.HeldPG != 2 {
		t.Fatalf("after the retake: available %d, held %d; want 1 and 2", l.Available, l.HeldPG)
	}
	if n := queued(t, env.Queue); n < 1 {
		t.Fatal("no fulfill job for the late payment")
	}

	// Sold out meanwhile: the late payment is refunded.
	reserveN(t, env, "bob", "late")
	o2, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(15*time.Minute + time.Millisecond)
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	reserveN(t, env, "carol", "late") // takes the last unit
	deliver(t, env, succeeded(o2, "evt_late_2"), 4)
	if st := orderStatus(t, env, o2.ID); st != shop.OrderRefunded {
		t.Fatalf("late payment when sold out: order is %s", st)
	}
	if l := env.CheckLedger(t, "late", 3); l.Available != 0 || l.HeldPG != 3 {
		t.Fatalf("after the refund: available %d, held %d; want 0 and 3", l.Available, l.HeldPG)
	}
}

func TestCanceledPaymentEndsTheOrder(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "c", 2, 2)
	reserveN(t, env, "alice", "c")
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	ev := succeeded(o, "evt_c")
	ev.Type = shop.EventPaymentFailed
	if err := env.Shop.HandlePaymentEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if st := orderStatus(t, env, o.ID); st != shop.OrderPaymentPending {
		t.Fatalf("after payment_failed the order is %s", st)
	}
	ev.ID, ev.Type = "evt_c2", shop.EventPaymentCanceled
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); env.Shop.HandlePaymentEvent(ctx, ev) }()
	}
	wg.Wait()
	if st := orderStatus(t, env, o.ID); st != shop.OrderExpired {
		t.Fatalf("after canceled the order is %s", st)
	}
	if l := env.CheckLedger(t, "c", 2); l.Available != 2 {
		t.Fatalf("available %d", l.Available)
	}
}

func TestCrashBeforePaymentIsEndedByTheDeadline(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "z", 2, 2)
	reserveN(t, env, "alice", "z")
	env.Shop.Fault = func(step string) error {
		if step == "checkout.before_payment" {
			return errDied
		}
		return nil
	}
	if _, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice"}); err != errDied {
		t.Fatalf("checkout: %v", err)
	}
	env.Shop.Fault = nil
	if l := env.CheckLedger(t, "z", 2); l.Available != 1 {
		t.Fatalf("available %d while the dead checkout holds its unit", l.Available)
	}
	env.Clock.Advance(15*time.Minute + time.Millisecond)
	rep, err := env.Shop.Sweep(ctx)
	if err != nil || rep.OrdersExpired != 1 {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	if l := env.CheckLedger(t, "z", 2); l.Available != 2 {
		t.Fatalf("available %d after the deadline", l.Available)
	}
}

// The queue is down when the success arrives: the webhook fails (Stripe retries), and the
// retry queues the job even though the order is already paid.
func TestSuccessWhileQueueDownIsRetried(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "q", 2, 2)
	reserveN(t, env, "alice", "q")
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	down, err := queue.New(ctx, queue.Config{Endpoint: "http://127.0.0.1:1", URLs: map[string]string{queue.Fulfill: "http://127.0.0.1:1/000000000000/nothing"}})
	if err != nil {
		t.Fatal(err)
	}
	env.Shop.Jobs = down
	ev := succeeded(o, "evt_q")
	if err := env.Shop.HandlePaymentEvent(ctx, ev); code(err) != shop.CodeUnavailable {
		t.Fatalf("with the queue down: %v, want unavailable (so the webhook answers 503)", err)
	}
	if n := queued(t, env.Queue); n != 0 {
		t.Fatalf("%d jobs", n)
	}
	env.Shop.Jobs = env.Queue
	if err := env.Shop.HandlePaymentEvent(ctx, ev); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if st, n := orderStatus(t, env, o.ID), queued(t, env.Queue); st != shop.OrderPaid || n != 1 {
		t.Fatalf("after the retry: order %s, %d jobs; want paid and 1", st, n)
	}
	if err := env.Shop.HandlePaymentEvent(ctx, ev); err != nil || queued(t, env.Queue) != 1 {
		t.Fatalf("a third delivery after it was recorded queued more: %v", err)
	}
}

// alreadyPaid is Stripe (stripe-mock) where every PaymentIntent has succeeded: cancelling one
// fails, and reading one says it succeeded for the given amount. It injects the case of a
// success webhook that never arrives.
type alreadyPaid struct {
	shop.Payments
	order shop.Order
}

func (p alreadyPaid) CancelIntent(context.Context, string, string, time.Time) error {
	return shop.ErrAlreadyPaid
}
func (p alreadyPaid) Intent(_ context.Context, pi string) (shop.PaymentEvent, string, error) {
	return shop.PaymentEvent{ID: "sweep:" + pi, Type: shop.EventPaymentSucceeded, PaymentIntentID: pi,
		OrderID: p.order.ID, AmountCents: p.order.AmountCents, Currency: p.order.Currency}, shop.IntentSucceeded, nil
}

// A payment that succeeded but whose webhook never came is applied by the sweep after the
// grace period, instead of leaving the order payment_pending for good.
func TestMissedSuccessWebhookIsAppliedBySweep(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "miss", 3, 3)
	reserveN(t, env, "alice", "miss")
	o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	env.Shop.Pay = alreadyPaid{Payments: env.Stripe, order: o}
	env.Clock.Advance(15*time.Minute + time.Second)
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if st := orderStatus(t, env, o.ID); st != shop.OrderPaymentPending {
		t.Fatalf("within the grace period the order is %s", st)
	}
	env.Clock.Advance(shop.PaymentGrace)
	if _, err := env.Shop.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if st := orderStatus(t, env, o.ID); st != shop.OrderPaid {
		t.Fatalf("after the grace period the order is %s, want paid", st)
	}
	if n := queued(t, env.Queue); n != 1 {
		t.Fatalf("%d fulfill jobs, want 1", n)
	}
	env.CheckLedger(t, "miss", 3)
}
