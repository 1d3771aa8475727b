package store_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lastunit/shared/draw"
	"lastunit/shared/shop"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// drawProduct creates a product with an entry period [opens, closes) and makes it a draw.
func drawProduct(t testing.TB, st *store.Store, id string, opens, closes, drawAt time.Time) shop.DrawRow {
	t.Helper()
	ctx := context.Background()
	if _, err := st.UpsertProduct(ctx, id, shop.ProductInput{Name: id, Currency: "usd", Stock: 3, MaxPerUser: 1, OpensAt: &opens, ClosesAt: &closes}, opens.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	seed, err := draw.NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.CreateDraw(ctx, id, seed, drawAt, opens.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDrawRecordIsVerifiable: entries taken during the entry period, the digest fixed at the
// close, the ranks computed by Postgres: the published record passes the verifier and its ranks
// are exactly those shared/draw computes in Go; the seed stays the one committed to.
func TestDrawRecordIsVerifiable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testenv.Postgres(t)
	st := store.New(pool)
	opens := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	closes, drawAt := opens.Add(time.Hour), opens.Add(2*time.Hour)
	created := drawProduct(t, st, "shoe", opens, closes, drawAt)

	// Making it a draw again (the admin saves the product again) keeps the committed seed.
	other, _ := draw.NewSeed()
	again, err := st.CreateDraw(ctx, "shoe", other, drawAt, opens.Add(-time.Minute))
	if err != nil || again.Seed != created.Seed {
		t.Fatalf("CreateDraw again: seed changed (%v)", err)
	}
	if _, err := st.CreateDraw(ctx, "nope", other, drawAt, opens); !errors.Is(err, shop.ErrNotFound) {
		t.Fatalf("CreateDraw of an unknown product = %v, want ErrNotFound", err)
	}

	put := func(user string, at time.Time, variants ...string) bool {
		_, ok, err := st.PutEntry(ctx, shop.Entry{ProductID: "shoe", UserID: user, VariantIDs: variants, Quantity: 1}, at)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if put("early", opens.Add(-time.Second), "default") {
		t.Fatal("an entry before opens_at was taken")
	}
	for i := range 40 {
		if !put(fmt.Sprintf("u%d", i), opens.Add(time.Duration(i)*time.Minute), "default") {
			t.Fatalf("entry u%d refused during the entry period", i)
		}
	}
	// Replacing keeps one entry; withdrawing removes it.
	if !put("u3", opens.Add(50*time.Minute), "default", "other") {
		t.Fatal("replacing an entry refused")
	}
	if e, err := st.Entry(ctx, "shoe", "u3"); err != nil || len(e.VariantIDs) != 2 || !e.CreatedAt.Equal(opens.Add(3*time.Minute)) {
		t.Fatalf("replaced entry = %+v, %v", e, err)
	}
	if open, err := st.DeleteEntry(ctx, "shoe", "u4", opens.Add(55*time.Minute)); err != nil || !open {
		t.Fatalf("DeleteEntry = %v, %v", open, err)
	}
	if _, err := st.Entry(ctx, "shoe", "u4"); !errors.Is(err, shop.ErrNotFound) {
		t.Fatalf("withdrawn entry still there: %v", err)
	}

	// Before the close: no digest, no entries in the record.
	if d, err := st.FixEntries(ctx, "shoe", closes.Add(-time.Millisecond)); err != nil || d != nil {
		t.Fatalf("FixEntries before closes_at = %v, %v", d, err)
	}
	rec, err := st.DrawRecord(ctx, "shoe")
	if err != nil || rec.Entries != nil || rec.EntriesDigest != nil || rec.Seed != nil || rec.Commitment != created.Seed.Commitment() {
		t.Fatalf("record before the close = %+v, %v", rec, err)
	}
	// At the close the digest is fixed, and nothing changes the entries any more.
	digest, err := st.FixEntries(ctx, "shoe", closes)
	if err != nil || digest == nil {
		t.Fatalf("FixEntries at closes_at = %v, %v", digest, err)
	}
	if put("late", closes.Add(-time.Millisecond), "default") { // a clock behind: the fixed digest still refuses
		t.Fatal("an entry after the digest was fixed was taken")
	}
	if open, err := st.DeleteEntry(ctx, "shoe", "u5", closes.Add(-time.Millisecond)); err != nil || open {
		t.Fatalf("DeleteEntry after the fix = %v, %v", open, err)
	}
	rec, err = st.DrawRecord(ctx, "shoe")
	if err != nil || len(rec.Entries) != 39 || rec.Seed != nil {
		t.Fatalf("record after the close: %d entries, seed %v, %v", len(rec.Entries), rec.Seed, err)
	}
	if err := draw.Verify(rec); !errors.Is(err, draw.ErrNotDrawn) || err.Error() != draw.ErrNotDrawn.Error() {
		t.Fatalf("Verify before the draw = %v, want only ErrNotDrawn", err)
	}

	// Not before draw_at; then once.
	if ran, err := st.RankDraw(ctx, "shoe", drawAt.Add(-time.Millisecond)); err != nil || ran {
		t.Fatalf("RankDraw before draw_at = %v, %v", ran, err)
	}
	if ran, err := st.RankDraw(ctx, "shoe", drawAt); err != nil || !ran {
		t.Fatalf("RankDraw = %v, %v", ran, err)
	}
	rec, err = st.DrawRecord(ctx, "shoe")
	if err != nil {
		t.Fatal(err)
	}
	if err := draw.Verify(rec); err != nil {
		t.Fatalf("the published record does not verify: %v", err)
	}
	if *rec.Seed != created.Seed.Hex() || *rec.EntriesDigest != *digest {
		t.Fatal("the record shows another seed or digest than the ones committed and fixed")
	}
	entrants := make([]string, 0, 39)
	for i := range 40 {
		if i != 4 {
			entrants = append(entrants, draw.Entrant("shoe", fmt.Sprintf("u%d", i)))
		}
	}
	want, err := draw.Ranks(created.Seed, draw.Digest(entrants), "", entrants)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range rec.Entries {
		if *e.Rank != i+1 || want[e.Entrant] != *e.Rank {
			t.Fatalf("entry %d: rank %d, Go computes %d", i, *e.Rank, want[e.Entrant])
		}
	}
	if e, err := st.Entry(ctx, "shoe", "u7"); err != nil || e.Rank == nil || *e.Rank != int64(want[draw.Entrant("shoe", "u7")]) {
		t.Fatalf("u7's entry = %+v, %v", e, err)
	}
}

// TestEntriesRacingTheClose: a thousand shoppers enter at once through the pooler while the
// sweep fixes the digest: every entry that was acknowledged is in the digest, every refused one
// is not, and the pool never needs more than its connections.
func TestEntriesRacingTheClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testenv.Postgres(t)
	st := store.New(pool)
	opens := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	closes := opens.Add(time.Hour)
	drawProduct(t, st, "race", opens, closes, closes)

	const n = 1000
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	var failed atomic.Int64
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			user := fmt.Sprintf("s%d", i)
			_, ok, err := st.PutEntry(ctx, shop.Entry{ProductID: "race", UserID: user, VariantIDs: []string{"default"}, Quantity: 1}, closes.Add(-time.Second))
			if err != nil {
				failed.Add(1)
				t.Error(err)
				return
			}
			mu.Lock()
			acked[user] = ok
			mu.Unlock()
		}()
	}
	var digest *string
	var fixErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		time.Sleep(5 * time.Millisecond) // let some entries in first: either outcome is checked below
		digest, fixErr = st.FixEntries(ctx, "race", closes)
	}()
	close(start)
	wg.Wait()
	if fixErr != nil || digest == nil || failed.Load() > 0 {
		t.Fatalf("FixEntries = %v, %v; %d entries failed", digest, fixErr, failed.Load())
	}
	var in []string
	for user, ok := range acked {
		_, err := st.Entry(ctx, "race", user)
		switch {
		case ok && err != nil:
			t.Fatalf("acknowledged entry %s is missing: %v", user, err)
		case !ok && !errors.Is(err, shop.ErrNotFound):
			t.Fatalf("refused entry %s was written: %v", user, err)
		}
		if ok {
			in = append(in, draw.Entrant("race", user))
		}
	}
	if draw.Digest(in) != *digest {
		t.Fatalf("the digest does not cover exactly the %d acknowledged entries", len(in))
	}
	t.Logf("%d of %d entries made it before the close", len(in), n)
}

// TestOverlappingSweepsDrawOnce: many sweeps run the same draw at once; exactly one ranks,
// the ranks are a permutation of 1..N, and a sweep that dies inside the transaction (its
// context cancelled) leaves nothing half-ranked for the next one.
func TestOverlappingSweepsDrawOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testenv.Postgres(t)
	st := store.New(pool)
	opens := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	closes := opens.Add(time.Hour)
	drawProduct(t, st, "once", opens, closes, closes)
	for i := range 300 {
		if _, ok, err := st.PutEntry(ctx, shop.Entry{ProductID: "once", UserID: fmt.Sprintf("s%d", i), VariantIDs: []string{"default"}, Quantity: 1}, opens); err != nil || !ok {
			t.Fatalf("PutEntry: %v, %v", ok, err)
		}
	}
	// A sweep that dies half-way: the statement is cancelled inside the transaction.
	dying, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.RankDraw(dying, "once", closes); err == nil {
		t.Fatal("a cancelled sweep reported success")
	}
	var drawnAt *time.Time
	if err := pool.QueryRow(ctx, `SELECT drawn_at FROM draws WHERE product_id = 'once'`).Scan(&drawnAt); err != nil || drawnAt != nil {
		t.Fatalf("a dead sweep left drawn_at = %v (%v)", drawnAt, err)
	}

	var wg sync.WaitGroup
	var ran atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := st.RankDraw(ctx, "once", closes.Add(time.Second))
			if err != nil {
				t.Error(err)
			}
			if ok {
				ran.Add(1)
			}
		}()
	}
	wg.Wait()
	if ran.Load() != 1 {
		t.Fatalf("%d sweeps ran the draw, want exactly 1", ran.Load())
	}
	var n, distinct, lo, hi int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT rank), min(rank), max(rank) FROM draw_ranks WHERE product_id = 'once'`).Scan(&n, &distinct, &lo, &hi); err != nil {
		t.Fatal(err)
	}
	if n != 300 || distinct != 300 || lo != 1 || hi != 300 {
		t.Fatalf("ranks: %d entries, %d distinct, %d..%d", n, distinct, lo, hi)
	}
	rec, err := st.DrawRecord(ctx, "once")
	if err != nil {
		t.Fatal(err)
	}
	if err := draw.Verify(rec); err != nil {
		t.Fatal(err)
	}
	// The entrant stored is the one shared/draw names publicly.
	var stored []byte
	if err := pool.QueryRow(ctx, `SELECT entrant FROM draw_entries WHERE product_id = 'once' AND user_id = 's0'`).Scan(&stored); err != nil || hex.EncodeToString(stored) != draw.Entrant("once", "s0") {
		t.Fatalf("stored entrant %x, %v", stored, err)
	}
}
