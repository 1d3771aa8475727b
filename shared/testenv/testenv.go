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
	neturl "net/url"
	"os"
	"strconv"
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
// returns a pool on it and its URL, both through PgBouncer in transaction pooling mode (with
// TEST_PREPARED_STATEMENTS=true: straight to Postgres, the pool preparing its statements).
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
	var opts []store.Option
	if env("TEST_PREPARED_STATEMENTS", "false") == "true" {
		// The whole suite in the runner's DB_PREPARED_STATEMENTS mode (`make test-prepared`):
		// straight to Postgres, each statement prepared once per connection.
		url, opts = Direct(t, url), []store.Option{store.WithPreparedStatements()}
	}
	pool, err := store.Open(ctx, url, 40, opts...)
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

// Direct returns the URL of the database that url (from Postgres) names, straight to Postgres
// (TEST_DATABASE_URL's host and user) instead of through PgBouncer: for what the pooler does
// not carry, such as named prepared statements.
func Direct(t testing.TB, url string) string {
	t.Helper()
	admin, err := pgx.ParseConfig(env("TEST_DATABASE_URL", DefaultDatabaseURL))
	if err != nil {
		t.Fatalf("parse TEST_DATABASE_URL: %v", err)
	}
	db, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	u := neturl.URL{Scheme: "postgres", User: neturl.User(admin.User), Host: net.JoinHostPort(admin.Host, strconv.Itoa(int(admin.Port))),
		Path: "/" + db.Database, RawQuery: "sslmode=disable"}
	if admin.Password != "" {
		u.User = neturl.UserPassword(admin.User, admin.Password)
	}
	return u.String()
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
