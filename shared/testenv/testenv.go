// Package testenv gives tests their own real Postgres database and Redis database, and a
// clock they can move. A service that does not answer fails the test with a clear message;
// nothing is ever skipped.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"lastunit/shared/store"
)

// Defaults for the machine's services; TEST_DATABASE_URL (the server, for creating and
// dropping databases), TEST_POOLER_ADDR (PgBouncer, which every test pool goes through, as
// every function goes through RDS Proxy) and TEST_REDIS_ADDR override them.
const (
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultPoolerAddr  = "127.0.0.1:6432"
	DefaultRedisAddr   = "127.0.0.1:6379"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Postgres creates a fresh, migrated database for the test and drops it afterwards. It
// returns a pool on it and its URL, both through PgBouncer in transaction pooling mode.
func Postgres(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	adminURL := env("TEST_DATABASE_URL", DefaultDatabaseURL)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("postgres is not reachable at %s: %v (start it with `make services`)", adminURL, err)
	}
	defer admin.Close(ctx)
	name := "lu_test_" + randomSuffix()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		t.Fatalf("parse %s: %v", adminURL, err)
	}
	pooler := env("TEST_POOLER_ADDR", DefaultPoolerAddr)
	if c, err := net.DialTimeout("tcp", pooler, 2*time.Second); err != nil {
		t.Fatalf("pgbouncer is not reachable at %s: %v (start it with `make services`)", pooler, err)
	} else {
		c.Close()
	}
	url := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, pooler, name)
	pool, err := store.Open(ctx, url, 40)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatalf("migrate %s: %v", name, err)
	}
	t.Cleanup(func() {
		pool.Close()
		c, err := pgx.Connect(context.Background(), adminURL)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return pool, url
}

// Redis claims one of Redis's numbered databases (1..15) for the test alone, empties it,
// and gives it back emptied afterwards. Claims are keys in database 0 that expire, so a
// crashed test run frees its claim by itself.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	ctx := context.Background()
	addr := env("TEST_REDIS_ADDR", DefaultRedisAddr)
	ctl := redis.NewClient(&redis.Options{Addr: addr})
	defer ctl.Close()
	if err := ctl.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis is not reachable at %s: %v (start it with `make services`)", addr, err)
	}
	token := randomSuffix()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for db := 1; db <= 15; db++ {
			claim := fmt.Sprintf("lastunit:testdb:%d", db)
			ok, err := ctl.SetNX(ctx, claim, token, 20*time.Minute).Result()
			if err != nil {
				t.Fatalf("claim redis db: %v", err)
			}
			if !ok {
				continue
			}
			rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db, PoolSize: 64})
			if err := rdb.FlushDB(ctx).Err(); err != nil {
				t.Fatalf("flush redis db %d: %v", db, err)
			}
			t.Cleanup(func() {
				rdb.FlushDB(context.Background())
				rdb.Close()
				c := redis.NewClient(&redis.Options{Addr: addr})
				defer c.Close()
				if v, _ := c.Get(context.Background(), claim).Result(); v == token {
					c.Del(context.Background(), claim)
				}
			})
			return rdb
		}
		if time.Now().After(deadline) {
			t.Fatalf("no free redis database (1..15) within 2 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Clock is a settable clock for the shop's Now field.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
