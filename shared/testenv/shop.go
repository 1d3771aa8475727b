package testenv

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"lastunit/shared/payment"
	"lastunit/shared/queue"
	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/store"
)

// Env is a shop service on its own Postgres and Redis databases, with a movable clock.
type Env struct {
	Shop  *shop.Service
	Pool  *pgxpool.Pool
	DBURL string
	Redis *redis.Client
	Clock *Clock
	// Set by WithPayments.
	Stripe *payment.Stripe
	Queue  *queue.Queue
}

// Start is the clock's starting time in every Env.
var Start = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// NewEnv builds an Env for the test.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	pool, url := Postgres(t)
	rdb := Redis(t)
	clock := NewClock(Start)
	gate := stock.New(rdb)
	svc := shop.NewService(store.New(pool), gate)
	svc.DrawNotify = gate
	svc.Now = clock.Now
	svc.ShopperRate = 0 // the clock stands still in tests: tests of the rate turn it on
	svc.Log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	return &Env{Shop: svc, Pool: pool, DBURL: url, Redis: rdb, Clock: clock}
}

// Product creates a product with stock units and the per-user limit.
func (e *Env) Product(t testing.TB, id string, stockUnits, maxPerUser int64) {
	t.Helper()
	_, err := e.Shop.UpsertProduct(context.Background(), id, shop.ProductInput{
		Name: "Product " + id, PriceCents: 1500, Currency: "usd", Stock: stockUnits, MaxPerUser: maxPerUser,
	})
	if err != nil {
		t.Fatalf("create product %s: %v", id, err)
	}
}

// Ledger is one product's books as Postgres and Redis keep them.
type Ledger struct {
	Stock, Sold, HeldPG int64            // Postgres: stock on hand, sold, units in live holds
	FreePG              int64            // Postgres: free units counted by the product's slots
	BoughtPG            int64            // Postgres: units in fulfilled holds (count against max_per_user)
	HoldsPG             map[string]int64 // Postgres: live hold id -> quantity
	Available           int64            // Redis: available units
	HoldsRedis          map[string]int64 // Redis: hold id -> quantity
	UsersRedis          map[string]int64 // Redis: user -> held units
	GatePresent         bool
}

// ReadLedger reads a product's books from both stores.
func (e *Env) ReadLedger(t testing.TB, id string) Ledger {
	t.Helper()
	ctx := context.Background()
	l := Ledger{HoldsPG: map[string]int64{}, HoldsRedis: map[string]int64{}, UsersRedis: map[string]int64{}}
	if err := e.Pool.QueryRow(ctx, `SELECT stock, sold, (SELECT COALESCE(sum(free), 0) FROM product_slots WHERE product_id = $1)
		FROM products WHERE id = $1`, id).Scan(&l.Stock, &l.Sold, &l.FreePG); err != nil {
		t.Fatalf("read product %s: %v", id, err)
	}
	rows, err := e.Pool.Query(ctx, `SELECT id, quantity FROM reservations WHERE product_id = $1 AND status IN ('reserved', 'checked_out')`, id)
	if err != nil {
		t.Fatalf("read holds: %v", err)
	}
	for rows.Next() {
		var rid string
		var q int64
		if err := rows.Scan(&rid, &q); err != nil {
			t.Fatalf("scan hold: %v", err)
		}
		l.HoldsPG[rid] = q
		l.HeldPG += q
	}
	if rows.Err() != nil {
		t.Fatalf("read holds: %v", rows.Err())
	}
	if err := e.Pool.QueryRow(ctx, `SELECT COALESCE(sum(quantity), 0) FROM reservations WHERE product_id = $1 AND status = 'fulfilled'`, id).Scan(&l.BoughtPG); err != nil {
		t.Fatalf("read bought units: %v", err)
	}
	k := stock.KeysFor(id)
	avail, err := e.Redis.HGet(ctx, k.Gate, "avail").Result()
	if err == redis.Nil {
		return l
	}
	if err != nil {
		t.Fatalf("read gate: %v", err)
	}
	l.GatePresent = true
	l.Available, _ = strconv.ParseInt(avail, 10, 64)
	holds, err := e.Redis.HGetAll(ctx, k.Holds).Result()
	if err != nil {
		t.Fatalf("read gate holds: %v", err)
	}
	for rid, v := range holds {
		q, _ := strconv.ParseInt(strings.SplitN(v, ":", 2)[0], 10, 64)
		l.HoldsRedis[rid] = q
	}
	users, err := e.Redis.HGetAll(ctx, k.Users).Result()
	if err != nil {
		t.Fatalf("read gate users: %v", err)
	}
	for u, v := range users {
		l.UsersRedis[u], _ = strconv.ParseInt(v, 10, 64)
	}
	return l
}

// CheckLedger fails the test unless Redis and Postgres agree on the product at rest:
// available + held == stock, Postgres's free units (its slots) + held == stock, the same
// live holds in both, nothing negative, and the stock
// plus sold equal to want (the units the product ever had).
func (e *Env) CheckLedger(t testing.TB, id string, want int64) Ledger {
	t.Helper()
	l := e.ReadLedger(t, id)
	if !l.GatePresent {
		t.Fatalf("ledger %s: no gate in Redis", id)
	}
	if l.Stock+l.Sold != want {
		t.Errorf("ledger %s: stock %d + sold %d != %d", id, l.Stock, l.Sold, want)
	}
	if l.FreePG+l.HeldPG != l.Stock {
		t.Errorf("ledger %s: free %d (postgres slots) + held %d (postgres) != stock %d", id, l.FreePG, l.HeldPG, l.Stock)
	}
	if l.Available < 0 {
		t.Errorf("ledger %s: available %d < 0", id, l.Available)
	}
	if l.Available+l.HeldPG != l.Stock {
		t.Errorf("ledger %s: available %d (redis) + held %d (postgres) != stock %d", id, l.Available, l.HeldPG, l.Stock)
	}
	if len(l.HoldsRedis) != len(l.HoldsPG) {
		t.Errorf("ledger %s: %d holds in redis, %d live in postgres", id, len(l.HoldsRedis), len(l.HoldsPG))
	}
	var users int64
	for rid, q := range l.HoldsPG {
		if l.HoldsRedis[rid] != q {
			t.Errorf("ledger %s: hold %s is %d units in postgres, %d in redis", id, rid, q, l.HoldsRedis[rid])
		}
	}
	for _, q := range l.UsersRedis {
		users += q
	}
	if users != l.HeldPG+l.BoughtPG {
		t.Errorf("ledger %s: per-user counts sum to %d in redis, %d held + %d bought in postgres", id, users, l.HeldPG, l.BoughtPG)
	}
	return l
}

// PGCount is one product's count in Postgres read in one statement (one snapshot).
type PGCount struct {
	Stock, Held, Free int64
}

// ReadPGCount reads a product's stock, units in live holds and free units (its slots) in
// one statement, so that it can be sampled while holds change: Held <= Stock and
// Free + Held == Stock must hold in every snapshot.
func (e *Env) ReadPGCount(ctx context.Context, id string) (PGCount, error) {
	var c PGCount
	err := e.Pool.QueryRow(ctx, `SELECT p.stock,
		COALESCE((SELECT sum(quantity) FROM reservations WHERE product_id = p.id AND status IN ('reserved', 'checked_out')), 0),
		COALESCE((SELECT sum(free) FROM product_slots WHERE product_id = p.id), 0)
		FROM products p WHERE p.id = $1`, id).Scan(&c.Stock, &c.Held, &c.Free)
	return c, err
}

// GateCopy is a copy of a product's Redis keys (DUMP), as a replica that missed the writes
// after it would hold them.
type GateCopy map[string]string

// productKeys lists every key of the product's hash slot {p:ID}.
func productKeys(t testing.TB, rdb *redis.Client, id string) []string {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "{p:"+id+"}:*").Result()
	if err != nil {
		t.Fatalf("list keys of %s: %v", id, err)
	}
	return keys
}

// DumpProduct copies every key of the product's hash slot.
func DumpProduct(t testing.TB, rdb *redis.Client, id string) GateCopy {
	t.Helper()
	c := GateCopy{}
	for _, k := range productKeys(t, rdb, id) {
		v, err := rdb.Dump(context.Background(), k).Result()
		if err == redis.Nil {
			continue
		}
		if err != nil {
			t.Fatalf("dump %s: %v", k, err)
		}
		c[k] = v
	}
	return c
}

// RestoreProduct stands for a Redis failover to a replica that missed every write to the
// product since c was taken: the product's keys become exactly c (keys created since vanish).
func RestoreProduct(t testing.TB, rdb *redis.Client, id string, c GateCopy) {
	t.Helper()
	ctx := context.Background()
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if keys := productKeys(t, rdb, id); len(keys) > 0 {
			p.Del(ctx, keys...)
		}
		for k, v := range c {
			p.RestoreReplace(ctx, k, 0, v)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("restore %s: %v", id, err)
	}
}
