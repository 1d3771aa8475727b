package store_test

import (
	"context"
	"errors"
	neturl "net/url"
	"os"
	"sync"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// TestMigrateConcurrentlyThroughThePooler: many migrate steps at once (a deploy's trigger
// retried, the runner and `make migrate` together) through PgBouncer in transaction pooling
// mode all succeed and apply each migration once; a session advisory lock would not hold
// there, the transaction lock does.
func TestMigrateConcurrentlyThroughThePooler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, url := testenv.Postgres(t) // migrated once already
	if _, err := pool.Exec(ctx, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := store.Open(ctx, url, 1)
			if err != nil {
				errs <- err
				return
			}
			defer p.Close()
			errs <- store.Migrate(ctx, p)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
	var applied, distinct int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied == 0 || applied != distinct {
		t.Fatalf("schema_migrations has %d rows for %d versions", applied, distinct)
	}
}

// TestLeaseIsExclusiveAndRunsOut: a lease is held by one holder at a time, comes back when
// its holder gives it back, and is taken over once it ran out (its holder died).
func TestLeaseIsExclusiveAndRunsOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testenv.Postgres(t)
	s := store.New(pool)
	now := testenv.Start
	unlock, ok, err := s.TryLock(ctx, "job", now, time.Minute)
	if err != nil || !ok {
		t.Fatalf("first take: %v %v", ok, err)
	}
	if _, ok, err := s.TryLock(ctx, "job", now.Add(30*time.Second), time.Minute); err != nil || ok {
		t.Fatalf("taken while held: %v %v", ok, err)
	}
	if _, ok, err := s.TryLock(ctx, "other", now, time.Minute); err != nil || !ok {
		t.Fatalf("another name: %v %v", ok, err)
	}
	unlock()
	unlock2, ok, err := s.TryLock(ctx, "job", now.Add(time.Second), time.Minute)
	if err != nil || !ok {
		t.Fatalf("after unlock: %v %v", ok, err)
	}
	_ = unlock2 // its holder "dies": never unlocks
	if _, ok, err := s.TryLock(ctx, "job", now.Add(30*time.Second), time.Minute); err != nil || ok {
		t.Fatalf("taken while the dead holder's lease runs: %v %v", ok, err)
	}
	unlock3, ok, err := s.TryLock(ctx, "job", now.Add(2*time.Minute), time.Minute)
	if err != nil || !ok {
		t.Fatalf("after the dead holder's lease ran out: %v %v", ok, err)
	}
	unlock2() // the old holder's late unlock must not free the new holder's lease
	if _, ok, err := s.TryLock(ctx, "job", now.Add(2*time.Minute+time.Second), time.Minute); err != nil || ok {
		t.Fatalf("a stale unlock freed the new holder's lease: %v %v", ok, err)
	}
	unlock3()
}

// TestHoldNotSentIsNotMaybeWritten: a hold whose context ends while it waits for a connection
// (a Lambda near its deadline, every connection of its pool busy) certainly did not run, so the
// reserve gives the gate's units back at once; one whose context ends while the statement runs
// may have committed, and is left to the sweep.
func TestHoldNotSentIsNotMaybeWritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := testenv.Postgres(t)
	pool, err := store.Open(ctx, url, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	busy, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	r := shop.Reservation{ID: shop.NewID("r_"), ProductID: "p", UserID: "u", Quantity: 1, Status: shop.StatusReserved,
		ExpiresAt: testenv.Start.Add(time.Minute), CreatedAt: testenv.Start}
	_, err = store.New(pool).InsertHold(short, r, 1, 0, testenv.Start, nil)
	if err == nil || errors.Is(err, shop.ErrMaybeWritten) {
		t.Fatalf("a hold that waited for a connection until its deadline: %v, want a certain failure", err)
	}
	busy.Release()
}

// TestRefundsDueLeastRecentlyTriedFirst: a requested refund that Stripe keeps refusing goes
// to the back after each failed try, so it never starves the cancels requested after it.
func TestRefundsDueLeastRecentlyTriedFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testenv.Postgres(t)
	s := store.New(pool)
	t0 := testenv.Start
	for i, id := range []string{"o_stuck", "o_newer"} {
		at := t0.Add(time.Duration(i) * time.Minute)
		if _, err := pool.Exec(ctx, `INSERT INTO orders (id, user_id, status, amount_cents, currency, payment_intent_id,
			payment_expires_at, created_at, updated_at, refund_requested_at)
			VALUES ($1, 'u', 'paid', 100, 'usd', 'pi_'||$1, $2, $2, $2, $2)`, id, at); err != nil {
			t.Fatal(err)
		}
	}
	next := func() string {
		t.Helper()
		due, err := s.RefundsDue(ctx, 1)
		if err != nil || len(due) != 1 {
			t.Fatalf("refunds due: %v %v", due, err)
		}
		return due[0].ID
	}
	if got := next(); got != "o_stuck" {
		t.Fatalf("first due: %s", got)
	}
	if err := s.NoteRefundFailure(ctx, "o_stuck", "charge_disputed", t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "o_newer" {
		t.Fatalf("after the stuck one failed, due first: %s, want o_newer", got)
	}
	var last string
	if err := pool.QueryRow(ctx, `SELECT last_error FROM orders WHERE id = 'o_stuck'`).Scan(&last); err != nil || last != "refund: charge_disputed" {
		t.Fatalf("last_error %q %v", last, err)
	}
}

// TestWithPassword: each new connection asks for its password (a rotated secret reaches a
// warm function's next connection), an open connection does not ask again, and a password
// that cannot be had fails that connection as unavailable (503), not as a crash.
func TestWithPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := testenv.Postgres(t)
	var mu sync.Mutex
	asked := 0
	pool, err := store.Open(ctx, url, 1, store.WithPassword(func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		asked++
		return "", nil // the test server trusts loopback: no password is checked here
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if asked != 0 {
		t.Fatalf("asked %d times before any connection (a cold start must not connect)", asked)
	}
	for range 3 {
		if err := store.Ping(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	if asked != 1 {
		t.Fatalf("asked %d times for one connection used three times, want 1", asked)
	}
	pool.Reset() // the proxy closed the connection: the next one asks again
	if err := store.Ping(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if asked != 2 {
		t.Fatalf("asked %d times after a new connection, want 2", asked)
	}

	failing, err := store.Open(ctx, url, 1, store.WithPassword(func(context.Context) (string, error) {
		return "", errors.New("secrets manager: throttled")
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer failing.Close()
	if err := store.Ping(ctx, failing); !errors.Is(err, shop.ErrUnavailable) {
		t.Fatalf("ping without a password: %v, want shop.ErrUnavailable", err)
	}

	// A login Postgres refuses (class 28, here a role it does not know: the test server
	// trusts loopback, so a wrong password cannot be shown) is a 503 too: a rotation's
	// window, not a bug in the request. Straight to Postgres: PgBouncer answers 08P01.
	server := testenv.DefaultDatabaseURL
	if v := os.Getenv("TEST_DATABASE_URL"); v != "" {
		server = v
	}
	u, err := neturl.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	u.User = neturl.UserPassword("lu_no_such_role", "stale-password")
	refused, err := store.Open(ctx, u.String(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	if err := store.Ping(ctx, refused); !errors.Is(err, shop.ErrUnavailable) {
		t.Fatalf("refused login: %v, want shop.ErrUnavailable", err)
	}
}
