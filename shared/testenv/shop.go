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
	svc := shop.NewService(store.New(pool), stock.New(rdb))
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
	if err := e.Pool.QueryRow(ctx, `SELECT stock, sold FROM products WHERE id = $1`, id).Scan(&l.Stock, &l.Sold); err != nil {
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
// available + held == stock, the same live holds in both, nothing negative, and the stock
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
