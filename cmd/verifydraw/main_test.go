package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"lastunit/shared/draw"
)

// record builds an honest record of a drawn product with n entries.
func record(t *testing.T, product string, n int, beacon *string) draw.Record {
	t.Helper()
	seed, err := draw.NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]draw.RecordEntry, n)
	for i := range entries {
		o := "waitlisted"
		if i == 0 {
			o = "won"
		}
		entries[i] = draw.RecordEntry{Entrant: draw.Entrant(product, fmt.Sprintf("shopper-%d", i)), VariantIDs: []string{"us-9", "us-10"}, Quantity: 1, Outcome: &o}
	}
	rec, err := draw.Publish(product, time.Now().Truncate(time.Second), seed, beacon, entries)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// serve answers GET /products/{product}/draw with body (status 200) and 404 for anything else.
func serve(t *testing.T, product string, body []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/products/"+product+"/draw" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such product"}}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestVerifyDraw(t *testing.T) {
	t.Parallel()
	beacon := "drand-mainnet-round-5000000"
	for _, c := range []struct {
		name   string
		beacon *string
		change func(r *draw.Record)
		raw    func(b []byte) []byte
		args   func(base string) []string
		code   int
		say    string
	}{
		{name: "an honest record", code: 0, say: "every rank follows"},
		{name: "an honest record with a beacon", beacon: &beacon, code: 0, say: `beacon "drand-mainnet-round-5000000"`},
		{name: "one rank changed", code: 1, say: "FAILED", change: func(r *draw.Record) {
			r.Entries[0].Rank, r.Entries[1].Rank = r.Entries[1].Rank, r.Entries[0].Rank
		}},
		{name: "one entrant changed", code: 1, say: "entries_digest", change: func(r *draw.Record) {
			r.Entries[2].Entrant = draw.Entrant("p-1", "mallory")
		}},
		{name: "one entrant added after the close, ranked first", code: 1, say: "entries_digest", change: func(r *draw.Record) {
			one := 1
			for i := range r.Entries {
				*r.Entries[i].Rank++
			}
			r.Entries = append(r.Entries, draw.RecordEntry{Entrant: draw.Entrant("p-1", "mallory"), Rank: &one, VariantIDs: []string{"us-9"}, Quantity: 1})
		}},
		{name: "the seed changed", code: 1, say: "not the commitment", change: func(r *draw.Record) {
			other, _ := draw.NewSeed()
			h := other.Hex()
			r.Seed = &h
		}},
		{name: "the beacon changed", beacon: &beacon, code: 1, say: "rank", change: func(r *draw.Record) {
			b := "drand-mainnet-round-5000001"
			r.Beacon = &b
		}},
		{name: "not drawn yet", code: 1, say: "has not run yet", change: func(r *draw.Record) {
			r.Seed = nil
			for i := range r.Entries {
				r.Entries[i].Rank, r.Entries[i].Outcome = nil, nil
			}
		}},
		{name: "a record of another product", code: 1, say: "not \"p-1\"", change: func(r *draw.Record) { r.ProductID = "p-2" }},
		{name: "not JSON", code: 1, say: "reading the record", raw: func([]byte) []byte { return []byte("<html>") }},
		{name: "trailing data", code: 1, say: "trailing data", raw: func(b []byte) []byte { return append(b, []byte(" {}")...) }},
		{name: "unknown product", code: 1, say: "404", args: func(base string) []string { return []string{base, "nope"} }},
		{name: "no product", code: 2, say: "usage", args: func(base string) []string { return []string{base} }},
		{name: "a bad product id", code: 2, say: "usage", args: func(base string) []string { return []string{base, "../admin"} }},
		{name: "a bad base URL", code: 2, say: "not an http(s) base URL", args: func(string) []string { return []string{"ftp://x", "p-1"} }},
		{name: "a server that is down", code: 1, say: "fetching", args: func(string) []string { return []string{"http://127.0.0.1:1", "p-1"} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rec := record(t, "p-1", 25, c.beacon)
			if c.change != nil {
				c.change(&rec)
			}
			body, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			if c.raw != nil {
				body = c.raw(body)
			}
			srv := serve(t, "p-1", body)
			args := []string{srv.URL + "/", "p-1"}
			if c.args != nil {
				args = c.args(srv.URL)
			}
			var out, errOut bytes.Buffer
			code := run(context.Background(), args, &out, &errOut, srv.Client())
			all := out.String() + errOut.String()
			if code != c.code || !strings.Contains(all, c.say) {
				t.Fatalf("exit %d, want %d, output containing %q:\n%s", code, c.code, c.say, all)
			}
		})
	}
}
