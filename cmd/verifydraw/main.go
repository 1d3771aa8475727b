// Command verifydraw checks a published draw the way any outsider can: it fetches
// GET /products/{id}/draw from a lastunit server and checks that the seed hashes to the
// commitment shown before the entry period, that the entrants hash to the entries' digest fixed
// at the close, and that every rank follows from the seed, the digest and the beacon.
//
//	go run ./cmd/verifydraw http://127.0.0.1:8080 PRODUCT
//
// Exit status: 0 the record checks out, 1 it does not (or the draw has not run yet, or the
// record could not be fetched), 2 wrong usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"lastunit/shared/draw"
)

var productID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, http.DefaultClient))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, client *http.Client) int {
	if len(args) != 2 || !productID.MatchString(args[1]) {
		fmt.Fprintln(stderr, "usage: verifydraw BASE_URL PRODUCT_ID   (e.g. verifydraw http://127.0.0.1:8080 p1)")
		return 2
	}
	base, err := url.Parse(args[0])
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		fmt.Fprintf(stderr, "verifydraw: %q is not an http(s) base URL\n", args[0])
		return 2
	}
	u := strings.TrimSuffix(base.String(), "/") + "/products/" + url.PathEscape(args[1]) + "/draw"
	rec, err := fetch(ctx, client, u)
	if err != nil {
		fmt.Fprintf(stderr, "verifydraw: %v\n", err)
		return 1
	}
	if rec.ProductID != args[1] {
		fmt.Fprintf(stderr, "verifydraw: FAILED: the record is for product %q, not %q\n", rec.ProductID, args[1])
		return 1
	}
	if err := draw.Verify(rec); err != nil {
		if err.Error() == draw.ErrNotDrawn.Error() {
			fmt.Fprintf(stderr, "verifydraw: %s: %v (draw_at %s)\n", rec.ProductID, err, rec.DrawAt.Format(time.RFC3339))
			return 1
		}
		fmt.Fprintf(stderr, "verifydraw: FAILED: the record of %s does not check out:\n", rec.ProductID)
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "  - %s\n", line)
		}
		return 1
	}
	beacon := "none"
	if rec.Beacon != nil {
		beacon = fmt.Sprintf("%q", *rec.Beacon)
	}
	fmt.Fprintf(stdout, "ok: %s, %d entries\n  commitment %s = SHA-256(seed %s)\n  entries digest %s matches the %d entrants\n  beacon %s\n  every rank follows from the seed, the digest and the beacon\n",
		rec.ProductID, len(rec.Entries), rec.Commitment, *rec.Seed, *rec.EntriesDigest, len(rec.Entries), beacon)
	return 0
}

func fetch(ctx context.Context, client *http.Client, u string) (draw.Record, error) {
	var rec draw.Record
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return rec, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return rec, fmt.Errorf("fetching %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return rec, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	dec := json.NewDecoder(resp.Body)
	if err := dec.Decode(&rec); err != nil {
		return rec, fmt.Errorf("reading the record from %s: %w", u, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return rec, fmt.Errorf("reading the record from %s: trailing data after the JSON object", u)
	}
	return rec, nil
}
