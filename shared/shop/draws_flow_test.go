package shop_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"lastunit/shared/draw"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// drawEnv makes product id a draw in two sizes (us-1, us-2, units each), max_per_user 2,
// entries open 1 h after the clock's start for 1 h, drawn 1 h later; the clock stays at the
// start.
func drawEnv(t testing.TB, id string, units int64) (*testenv.Env, time.Time, time.Time, time.Time) {
	t.Helper()
	e := testenv.NewEnv(t)
	opens := testenv.Start.Add(time.Hour)
	closes, drawAt := opens.Add(time.Hour), opens.Add(2*time.Hour)
	p, err := e.Shop.UpsertProduct(context.Background(), id, shop.ProductInput{
		Name: "Shoe", PriceCents: 9000, Currency: "usd", MaxPerUser: 2, Variants: testenv.Sizes(2, units),
		OpensAt: &opens, ClosesAt: &closes, Allocation: shop.AllocationDraw, DrawAt: &drawAt,
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Allocation != shop.AllocationDraw || p.DrawCommitment == nil || p.DrawSeed != nil || p.DrawEntriesDigest != nil || p.Draw == nil {
		t.Fatalf("new draw shows %+v", p.Product)
	}
	return e, opens, closes, drawAt
}

func entry(t testing.TB, e *testenv.Env, id, user string, q int64, vs ...string) shop.Entry {
	t.Helper()
	en, err := e.Shop.Enter(context.Background(), shop.EntryRequest{UserID: user, ProductID: id, VariantIDs: vs, Quantity: q})
	if err != nil {
		t.Fatalf("enter %s: %v", user, err)
	}
	return en
}

func counts(t testing.TB, e *testenv.Env, id string) shop.DrawCounts {
	t.Helper()
	c, err := e.Shop.Store.DrawCounts(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDrawFlow walks one draw through the service: reserves refused, entries only in their
// period, the digest and the seed shown when due, offers in rank order as holds that both
// stores agree on, and backfill on a release and on an expiry, each with a fresh window.
func TestDrawFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, opens, closes, drawAt := drawEnv(t, "kicks", 1)
	svc := e.Shop
	svc.DrawOfferWindow = 10 * time.Minute

	if _, err := svc.Reserve(ctx, shop.ReserveRequest{UserID: "u0", ProductID: "kicks", VariantID: "us-1", Quantity: 1}); code(err) != shop.CodeNotAdmitted {
		t.Fatalf("reserve of a draw = %v, want not_admitted", err)
	}
	if _, err := svc.Enter(ctx, shop.EntryRequest{UserID: "u0", ProductID: "kicks", VariantIDs: []string{"us-1"}}); code(err) != shop.CodeNotOpen {
		t.Fatalf("entry before the opening = %v, want not_open", err)
	}
	e.Clock.Advance(opens.Sub(testenv.Start))
	for _, bad := range []shop.EntryRequest{
		{VariantIDs: []string{"us-1", "us-1"}}, {VariantIDs: []string{"US 1"}}, {Quantity: 3, VariantIDs: []string{"us-1"}},
		{VariantIDs: nil}, {VariantIDs: []string{"a", "b", "c", "d", "e", "f"}},
	} {
		bad.UserID, bad.ProductID = "u0", "kicks"
		if _, err := svc.Enter(ctx, bad); code(err) != shop.CodeInvalidRequest {
			t.Errorf("entry %+v = %v, want invalid_request", bad, err)
		}
	}
	if _, err := svc.Enter(ctx, shop.EntryRequest{UserID: "u0", ProductID: "kicks", VariantIDs: []string{"us-9"}}); code(err) != shop.CodeNotFound {
		t.Errorf("entry naming an unknown size = %v, want not_found", err)
	}
	users := []string{"u1", "u2", "u3", "u4", "u5", "u6"}
	for _, u := range users {
		entry(t, e, "kicks", u, 1, "us-2") // replaced just below
		entry(t, e, "kicks", u, 1, "us-1", "us-2")
	}
	if got, err := svc.MyEntry(ctx, "u1", "kicks"); err != nil || got.State != shop.EntryEntered || len(got.VariantIDs) != 2 || got.Rank != nil {
		t.Fatalf("entry of u1 = %+v, %v", got, err)
	}
	if err := svc.Withdraw(ctx, "u6", "kicks"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.MyEntry(ctx, "u6", "kicks"); code(err) != shop.CodeNotFound {
		t.Fatalf("withdrawn entry = %v, want not_found", err)
	}
	users = users[:5]

	e.Clock.Advance(closes.Sub(opens))
	// From closes_at the digest shows at once, before any sweep, in the product and the record.
	if p, err := svc.Product(ctx, "kicks"); err != nil || p.DrawEntriesDigest == nil {
		t.Fatalf("product at the close: %+v, %v", p, err)
	}
	if rec, err := svc.DrawRecord(ctx, "kicks"); err != nil || rec.EntriesDigest == nil || len(rec.Entries) != 5 {
		t.Fatalf("record at the close: %+v, %v", rec, err)
	}
	if _, err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Withdraw(ctx, "u1", "kicks"); code(err) != shop.CodeInvalidState {
		t.Fatalf("withdraw after the close = %v, want invalid_state", err)
	}
	p, err := svc.Product(ctx, "kicks")
	if err != nil || p.DrawEntriesDigest == nil || p.DrawSeed != nil {
		t.Fatalf("after the close: %+v, %v", p, err)
	}
	if _, err := svc.SetBeacon(ctx, "kicks", "drand-round-42"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetBeacon(ctx, "kicks", "again"); code(err) != shop.CodeInvalidState {
		t.Fatalf("second beacon = %v, want invalid_state", err)
	}

	e.Clock.Advance(drawAt.Sub(closes))
	for range 2 { // a second sweep changes nothing
		if _, err := svc.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := svc.DrawRecord(ctx, "kicks")
	if err != nil {
		t.Fatal(err)
	}
	if err := draw.Verify(rec); err != nil {
		t.Fatalf("the record does not verify: %v", err)
	}
	p, _ = svc.Product(ctx, "kicks")
	if p.DrawSeed == nil || *p.DrawSeed != *rec.Seed {
		t.Fatalf("product's seed %v, record's %v", p.DrawSeed, rec.Seed)
	}
	byRank := make([]string, len(users)+1)
	for _, u := range users {
		en, err := svc.MyEntry(ctx, u, "kicks")
		if err != nil || en.Rank == nil {
			t.Fatalf("entry of %s: %+v, %v", u, en, err)
		}
		byRank[*en.Rank] = u
	}
	want := func(u, state, variant string) shop.Entry {
		t.Helper()
		en, err := svc.MyEntry(ctx, u, "kicks")
		if err != nil {
			t.Fatal(err)
		}
		if en.State != state || (variant != "" && (en.VariantID == nil || *en.VariantID != variant)) {
			t.Fatalf("entry of %s (rank %d) = %s %v, want %s %s", u, *en.Rank, en.State, en.VariantID, state, variant)
		}
		return en
	}
	// Rank 1 gets us-1 (its first choice), rank 2 us-2, the others wait.
	first := want(byRank[1], shop.EntryWon, "us-1")
	want(byRank[2], shop.EntryWon, "us-2")
	want(byRank[3], shop.EntryWaitlisted, "")
	if c := counts(t, e, "kicks"); c != (shop.DrawCounts{Entries: 5, Won: 2, Waitlisted: 3}) {
		t.Fatalf("counts after the draw = %+v", c)
	}
	if first.OfferExpiresAt == nil || !first.OfferExpiresAt.Equal(drawAt.Add(10*time.Minute)) || *first.ReservationID != shop.OfferID("kicks", byRank[1]) {
		t.Fatalf("offer of rank 1 = %+v", first)
	}
	e.CheckLedger(t, "kicks", 2)

	// Rank 1 releases: rank 3 gets us-1 at once, with a window from now.
	e.Clock.Advance(time.Minute)
	if err := svc.Release(ctx, byRank[1], *first.ReservationID); err != nil {
		t.Fatal(err)
	}
	want(byRank[1], shop.EntryExpired, "us-1")
	third := want(byRank[3], shop.EntryWon, "us-1")
	if !third.OfferExpiresAt.Equal(drawAt.Add(11 * time.Minute)) {
		t.Fatalf("backfilled offer ends %v", third.OfferExpiresAt)
	}
	e.CheckLedger(t, "kicks", 2)

	// Every offer runs out: the sweep expires them and offers rank 4 and 5.
	e.Clock.Advance(20 * time.Minute)
	if _, err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	want(byRank[2], shop.EntryExpired, "")
	want(byRank[3], shop.EntryExpired, "")
	want(byRank[4], shop.EntryWon, "")
	want(byRank[5], shop.EntryWon, "")
	e.CheckLedger(t, "kicks", 2)
	if c := counts(t, e, "kicks"); c != (shop.DrawCounts{Entries: 5, Won: 2, Expired: 3}) {
		t.Fatalf("counts = %+v", c)
	}
	// Those run out too: nobody waits, the units stay free and never go first come.
	e.Clock.Advance(20 * time.Minute)
	if _, err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, e, "kicks"); c != (shop.DrawCounts{Entries: 5, Expired: 5}) {
		t.Fatalf("counts = %+v", c)
	}
	if _, err := svc.Reserve(ctx, shop.ReserveRequest{UserID: "late", ProductID: "kicks", VariantID: "us-1", Quantity: 1}); code(err) != shop.CodeNotAdmitted {
		t.Fatalf("reserve of a drawn draw = %v, want not_admitted", err)
	}
	e.CheckLedger(t, "kicks", 2)
	var se *shop.Error
	if _, err := svc.DrawRecord(ctx, "nope"); !errors.As(err, &se) || se.Code != shop.CodeNotFound {
		t.Fatalf("record of an unknown product = %v", err)
	}
	_ = fmt.Sprint()
}

// TestDrawBackfillAfterAnUnpaidOrder: a winner checks out and never pays; when the payment
// deadline ends the order, the entry is expired and the next fitting entry is offered the units
// at once with a fresh window; a winner whose paid order is cancelled by the admin (refunded)
// hands its units on too.
func TestDrawBackfillAfterAnUnpaidOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, opens, _, drawAt := drawEnv(t, "unpaid", 1)
	e.WithPayments(t)
	tap := e.WithStripeTap(t)
	svc := e.Shop
	svc.DrawOfferWindow = 30 * time.Minute
	svc.PaymentWindow = 10 * time.Minute
	users := drawEntries(t, e, "unpaid", 6, opens, drawAt)
	if _, err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	won := func() []drawRow {
		var out []drawRow
		for _, r := range readDraw(t, e, "unpaid").entries {
			if r.state == shop.EntryWon {
				out = append(out, r)
			}
		}
		return out
	}
	first := won()
	if len(first) == 0 {
		t.Fatal("nobody won")
	}
	w := first[0]
	o, err := svc.Checkout(ctx, shop.CheckoutRequest{UserID: w.user, ReservationIDs: []string{w.reservation}})
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(11 * time.Minute) // past the payment deadline, inside the offer window
	if _, err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := svc.Store.Order(ctx, o.ID); err != nil || got.Status != shop.OrderExpired {
		t.Fatalf("order after its deadline: %+v, %v", got, err)
	}
	st := checkDraw(t, e, "unpaid", 2)
	for _, r := range st.entries {
		if r.user == w.user && r.state != shop.EntryExpired {
			t.Fatalf("the unpaid winner's entry is %s", r.state)
		}
	}
	var fresh int
	for _, r := range won() {
		en, err := svc.MyEntry(ctx, r.user, "unpaid")
		if err != nil {
			t.Fatal(err)
		}
		if en.OfferExpiresAt.Equal(e.Clock.Now().Add(30 * time.Minute)) {
			fresh++
		}
	}
	if fresh == 0 {
		t.Fatalf("no offer with a fresh window after the order expired (%d entries, %v)", len(users), won())
	}

	// The next winner pays; fulfilment never happens, and the admin cancels the failed job:
	// refunded, the entry expired, its unit offered on.
	p := won()[0]
	o, err = svc.Checkout(ctx, shop.CheckoutRequest{UserID: p.user, ReservationIDs: []string{p.reservation}})
	if err != nil {
		t.Fatal(err)
	}
	tap.Succeed(t, o.ID)
	if err := svc.HandlePaymentEvent(ctx, succeeded(o, "evt_"+o.ID)); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, e, "unpaid"); c.Paid != 1 {
		t.Fatalf("counts after a payment: %+v", c)
	}
	e.Clock.Advance(svc.FulfillDeadline + time.Minute)
	if _, err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CancelJob(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	if en, err := svc.MyEntry(ctx, p.user, "unpaid"); err != nil || en.State != shop.EntryExpired {
		t.Fatalf("the refunded winner's entry: %+v, %v", en, err)
	}
	st = checkDraw(t, e, "unpaid", 2)
	var after int
	for _, r := range st.entries {
		if r.state == shop.EntryWon && r.holdStatus == shop.StatusReserved {
			after++
		}
	}
	if after == 0 {
		t.Fatalf("no live offer after the cancel: %+v", st.entries)
	}
}
