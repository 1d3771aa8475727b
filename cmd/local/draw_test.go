package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"lastunit/shared/draw"
	"lastunit/shared/rooms"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// verifier builds cmd/verifydraw once for the test.
func verifier(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "verifydraw")
	out, err := exec.Command("go", "build", "-o", bin, "lastunit/cmd/verifydraw").CombinedOutput()
	if err != nil {
		t.Fatalf("build cmd/verifydraw: %v\n%s", err, out)
	}
	return bin
}

// verify runs the verifier against base and product and returns its exit code and output.
func verify(t *testing.T, bin, base, product string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, base, product)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}

// TestDrawOverHTTP runs a draw through the runner's routes as a shopper, an admin and an
// outsider would (every request and answer held against openapi.yaml, every WebSocket message
// against asyncapi.yaml): three shoppers enter a one-unit draw, the draw runs in the sweep, the
// room hears it, the record passes cmd/verifydraw (and the same record with one rank, one
// entrant or the seed changed fails it), the winner lets the offer run out, the next one is
// offered the unit, checks out and pays.
func TestDrawOverHTTP(t *testing.T) {
	t.Parallel()
	bin := verifier(t)
	env := testenv.NewEnv(t)
	env.Stripe, env.Queue = testenv.Stripe(t), testenv.Queue(t, time.Second)
	env.Shop.Pay, env.Shop.Jobs = env.Stripe, env.Queue
	env.Shop.DrawOfferWindow = 5 * time.Minute
	srv := startFullServer(t, env)
	admin := bearer(t, "ada", "admin")
	opens, closes := testenv.Start.Add(time.Minute), testenv.Start.Add(2*time.Minute)
	drawAt := closes.Add(time.Minute)
	put := fmt.Sprintf(`{"name":"Shoe","price_cents":9000,"currency":"usd","stock":1,"max_per_user":1,"allocation":"draw","opens_at":%q,"closes_at":%q,"draw_at":%q}`,
		opens.Format(time.RFC3339), closes.Format(time.RFC3339), drawAt.Format(time.RFC3339))
	r := call(t, srv, "PUT", "/admin/products/shoe", admin, put)
	var ap shop.AdminProduct
	if err := json.Unmarshal(r.body, &ap); r.status != 200 || err != nil || ap.DrawCommitment == nil || ap.Draw == nil {
		t.Fatalf("put draw: %d %s", r.status, r.body)
	}
	v := dial(t, srv, "")
	v.subscribe("shoe")

	shoppers := []string{"ana", "ben", "cy"}
	if r := call(t, srv, "POST", "/products/shoe/entry", bearer(t, "ana"), `{}`); r.status != 409 {
		t.Fatalf("entry before the opening: %d %s", r.status, r.body)
	}
	env.Clock.Advance(opens.Sub(testenv.Start))
	for _, s := range shoppers {
		if r := call(t, srv, "POST", "/products/shoe/entry", bearer(t, s), `{"quantity":1}`); r.status != 200 {
			t.Fatalf("entry of %s: %d %s", s, r.status, r.body)
		}
	}
	if r := call(t, srv, "GET", "/products/shoe/entry", bearer(t, "ana"), ""); r.status != 200 {
		t.Fatalf("get entry: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "POST", "/reservations", bearer(t, "dan"), `{"product_id":"shoe"}`); r.status != 409 {
		t.Fatalf("reserve of a draw: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "GET", "/products/shoe/draw", "", ""); r.status != 200 {
		t.Fatalf("record before the close: %d %s", r.status, r.body)
	}
	env.Clock.Advance(closes.Sub(opens))
	sweep(t, env)
	if r := call(t, srv, "POST", "/admin/products/shoe/draw-beacon", admin, `{"beacon":"drand-quicknet-round-100"}`); r.status != 200 {
		t.Fatalf("beacon: %d %s", r.status, r.body)
	}
	env.Clock.Advance(drawAt.Sub(closes))
	sweep(t, env)

	// The room hears the draw.
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := v.next(time.Until(deadline))
		if m.Type == rooms.TypeDraw {
			if m.State != "drawn" || m.Won != 1 || m.Wait != 2 {
				t.Fatalf("draw message %+v", m)
			}
			break
		}
	}

	// The record verifies; tampered copies of it do not.
	if code, out := verify(t, bin, srv.URL, "shoe"); code != 0 {
		t.Fatalf("verifydraw on the runner's record: exit %d\n%s", code, out)
	}
	r = call(t, srv, "GET", "/products/shoe/draw", "", "")
	var rec draw.Record
	if err := json.Unmarshal(r.body, &rec); err != nil || len(rec.Entries) != 3 {
		t.Fatalf("record: %d %s", r.status, r.body)
	}
	for name, change := range map[string]func(*draw.Record){
		"one rank changed":    func(r *draw.Record) { r.Entries[0].Rank, r.Entries[1].Rank = r.Entries[1].Rank, r.Entries[0].Rank },
		"one entrant changed": func(r *draw.Record) { r.Entries[1].Entrant = draw.Entrant("shoe", "mallory") },
		"the seed changed": func(r *draw.Record) {
			other, _ := draw.NewSeed()
			h := other.Hex()
			r.Seed = &h
		},
	} {
		copyRec := rec
		copyRec.Entries = append([]draw.RecordEntry(nil), rec.Entries...)
		for i := range copyRec.Entries {
			rk := *copyRec.Entries[i].Rank
			copyRec.Entries[i].Rank = &rk
		}
		change(&copyRec)
		body, _ := json.Marshal(copyRec)
		fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}))
		code, out := verify(t, bin, fake.URL, "shoe")
		fake.Close()
		if code != 1 {
			t.Errorf("verifydraw on the record with %s: exit %d, want 1\n%s", name, code, out)
		}
	}

	// Who won? Their offer runs out; the next in rank is offered the unit and pays.
	entryOf := func(s string) shop.Entry {
		var e shop.Entry
		r := call(t, srv, "GET", "/products/shoe/entry", bearer(t, s), "")
		if err := json.Unmarshal(r.body, &e); r.status != 200 || err != nil {
			t.Fatalf("entry of %s: %d %s", s, r.status, r.body)
		}
		return e
	}
	byRank := map[int64]string{}
	for _, s := range shoppers {
		e := entryOf(s)
		byRank[*e.Rank] = s
	}
	if e := entryOf(byRank[1]); e.State != shop.EntryWon || e.ReservationID == nil {
		t.Fatalf("rank 1: %+v", e)
	}
	env.Clock.Advance(6 * time.Minute)
	sweep(t, env)
	if e := entryOf(byRank[1]); e.State != shop.EntryExpired {
		t.Fatalf("rank 1 after its window: %+v", e)
	}
	second := entryOf(byRank[2])
	if second.State != shop.EntryWon || second.ReservationID == nil {
		t.Fatalf("rank 2 after the backfill: %+v", second)
	}
	r = call(t, srv, "POST", "/checkout", bearer(t, byRank[2]), fmt.Sprintf(`{"reservation_ids":[%q]}`, *second.ReservationID))
	var o shop.Order
	if err := json.Unmarshal(r.body, &o); r.status != 201 || err != nil {
		t.Fatalf("checkout: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "POST", "/_local/pay/"+o.ID, bearer(t, byRank[2]), ""); r.status != 202 {
		t.Fatalf("pay: %d %s", r.status, r.body)
	}
	eventually(t, 15*time.Second, "the offer is paid", func() bool {
		r := call(t, srv, "GET", "/admin/products", admin, "")
		var list struct{ Products []shop.AdminProduct }
		if err := json.Unmarshal(r.body, &list); err != nil || len(list.Products) != 1 || list.Products[0].Draw == nil {
			t.Fatalf("admin products: %d %s", r.status, r.body)
		}
		return *list.Products[0].Draw == shop.DrawCounts{Entries: 3, Won: 1, Waitlisted: 1, Expired: 1, Paid: 1}
	})
	// The books are read from both stores one after the other: only once the runner's poller
	// has fulfilled the order (Postgres, then the gate's drop) do they stand still.
	eventually(t, 15*time.Second, "the order is fulfilled", func() bool {
		r := call(t, srv, "GET", "/orders/"+o.ID, bearer(t, byRank[2]), "")
		var got shop.Order
		return r.status == 200 && json.Unmarshal(r.body, &got) == nil && got.Status == shop.OrderFulfilled
	})
	env.CheckLedger(t, "shoe", 1)
}

func sweep(t *testing.T, env *testenv.Env) {
	t.Helper()
	if _, err := env.Shop.Sweep(t.Context()); err != nil {
		t.Fatalf("sweep: %v", err)
	}
}
