package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"lastunit/cmd/bench/herd"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// TestDropMomentThroughThePooler: 200 execution environments of the reserve function cold-start
// at the same instant (each with the stack's pool of one connection, serving one event at a
// time) and reserve 4 times each for 100 units, through PgBouncer in transaction pooling mode
// with its cap of server connections. No cold start and no invocation fails, nothing answers
// 5xx, exactly 100 holds exist in Postgres, the gate agrees, and Postgres never saw more
// server connections for this database than the pooler's cap.
func TestDropMomentThroughThePooler(t *testing.T) {
	const envs, each, units, poolerCap = 200, 4, 100, 20
	ctx := context.Background()
	env := testenv.NewEnv(t)
	env.Product(t, "drop-1", units, 2)
	// Nothing is read from Postgres until a hold is recorded: the catalog and the gate are in
	// Redis once the product exists.
	// Two hundred environments share this machine's two cores (under -race, beside other test
	// packages): first connections wait for CPU, not for the services, so the test gives them
	// more time than a Lambda environment (one vCPU of its own) needs.
	opts := env.Redis.Options()
	t.Setenv("DATABASE_URL", env.DBURL+"&connect_timeout=60")
	t.Setenv("REDIS_URL", fmt.Sprintf("redis://%s/%d?dial_timeout=60s", opts.Addr, opts.DB))
	t.Setenv("DB_MAX_CONNS", "1")
	t.Setenv("MIGRATE_ON_START", "")
	t.Setenv("SQS_ENDPOINT", "http://127.0.0.1:9") // stock notices fail quietly; never a real AWS endpoint
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("QUEUE_PREFIX", "lastunit-drop-")

	u, err := url.Parse(env.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	db := u.Path[1:]
	admin, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	if err != nil {
		t.Fatalf("postgres (direct, for pg_stat_activity): %v", err)
	}
	defer admin.Close()
	stop := herd.Watch(ctx, admin, db, 10*time.Millisecond)

	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	res := herd.Run(ctx, herd.Config{
		Envs: envs, Invocations: each,
		Start: func(ctx context.Context, e int) (herd.Env, error) { return herd.StartReserve(ctx, quiet) },
		Event: func(e, i int) []byte { return herd.ReserveEvent(fmt.Sprintf("shopper-%d", e), "drop-1") },
	})
	peak, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d invocations: %d failed, statuses %v, cold start p50 %v, invocation p50 %v p99 %v, wall %v, peak server connections %d",
		res.Invocations, res.Failed, res.Statuses, herd.Percentile(res.ColdStart, 50),
		herd.Percentile(res.Latency, 50), herd.Percentile(res.Latency, 99), res.Wall, peak)
	if res.Failed > 0 {
		t.Fatalf("%d of %d invocations failed: %v", res.Failed, res.Invocations, res.Errors)
	}
	if n := res.Count5xx(); n > 0 {
		t.Fatalf("%d answers were 5xx: %v", n, res.Statuses)
	}
	if res.Statuses[201] != units || res.Statuses[201]+res.Statuses[409] != envs*each {
		t.Fatalf("statuses %v: want exactly %d holds (201) and the rest sold out or over the limit (409)", res.Statuses, units)
	}
	l := env.ReadLedger(t, "drop-1")
	if l.HeldPG != units || len(l.HoldsPG) != units || l.Available != 0 || l.Available+l.HeldPG != l.Stock {
		t.Fatalf("ledger after the drop: Postgres holds %d units in %d holds, gate available %d, stock %d", l.HeldPG, len(l.HoldsPG), l.Available, l.Stock)
	}
	if peak == 0 || peak > poolerCap {
		t.Fatalf("Postgres had %d server connections for the database at the peak, want 1 to the pooler's cap of %d", peak, poolerCap)
	}
}

// TestDrawEntryBurstThroughThePooler: the opening of a draw's entry period is a burst. 200
// execution environments cold-start at once (the stack's pool of one connection each) and
// post 5 entries each, 1,000 shoppers in the same moment, through PgBouncer with its cap of
// server connections: every entry is answered 200 and durable in Postgres, nothing is 5xx, and
// Postgres never saw more server connections for the database than the pooler's cap.
func TestDrawEntryBurstThroughThePooler(t *testing.T) {
	const envs, each, poolerCap = 200, 5, 20
	ctx := context.Background()
	env := testenv.NewEnv(t)
	env.Shop.Now = time.Now // the functions run on the real clock
	opens, closes := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	drawAt := closes.Add(time.Hour)
	if _, err := env.Shop.UpsertProduct(ctx, "draw-1", shop.ProductInput{Name: "Draw", PriceCents: 100, Currency: "usd", Stock: 10, MaxPerUser: 1,
		OpensAt: &opens, ClosesAt: &closes, Allocation: shop.AllocationDraw, DrawAt: &drawAt}); err != nil {
		t.Fatal(err)
	}
	opts := env.Redis.Options()
	t.Setenv("DATABASE_URL", env.DBURL+"&connect_timeout=60")
	t.Setenv("REDIS_URL", fmt.Sprintf("redis://%s/%d?dial_timeout=60s", opts.Addr, opts.DB))
	t.Setenv("DB_MAX_CONNS", "1")
	t.Setenv("MIGRATE_ON_START", "")
	t.Setenv("SQS_ENDPOINT", "http://127.0.0.1:9")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("QUEUE_PREFIX", "lastunit-entries-")
	u, err := url.Parse(env.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	if err != nil {
		t.Fatalf("postgres (direct, for pg_stat_activity): %v", err)
	}
	defer admin.Close()
	stop := herd.Watch(ctx, admin, u.Path[1:], 10*time.Millisecond)
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	res := herd.Run(ctx, herd.Config{
		Envs: envs, Invocations: each,
		Start: func(ctx context.Context, e int) (herd.Env, error) { return herd.StartReserve(ctx, quiet) },
		Event: func(e, i int) []byte { return herd.EntryEvent(fmt.Sprintf("entrant-%d-%d", e, i), "draw-1") },
	})
	peak, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries: %d failed, statuses %v, cold start p50 %v, invocation p50 %v p99 %v, wall %v, peak server connections %d",
		res.Invocations, res.Failed, res.Statuses, herd.Percentile(res.ColdStart, 50),
		herd.Percentile(res.Latency, 50), herd.Percentile(res.Latency, 99), res.Wall, peak)
	if res.Failed > 0 {
		t.Fatalf("%d of %d invocations failed: %v", res.Failed, res.Invocations, res.Errors)
	}
	if res.Statuses[200] != envs*each {
		t.Fatalf("statuses %v: want every one of the %d entries answered 200", res.Statuses, envs*each)
	}
	var n int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM draw_entries WHERE product_id = 'draw-1'`).Scan(&n); err != nil || n != envs*each {
		t.Fatalf("%d entries in postgres (%v), want %d", n, err, envs*each)
	}
	if peak == 0 || peak > poolerCap {
		t.Fatalf("Postgres had %d server connections for the database at the peak, want 1 to the pooler's cap of %d", peak, poolerCap)
	}
}
