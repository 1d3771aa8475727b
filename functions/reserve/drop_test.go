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
