package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// appRole gives the test a role name of its own (roles are global to the cluster) and drops
// the role afterwards, with what it was granted in the test's database.
func appRole(t *testing.T, owner *pgxpool.Pool) string {
	t.Helper()
	name := fmt.Sprintf("lu_app_%s", strings.TrimPrefix(currentDB(t, owner), "lu_test_"))
	t.Cleanup(func() {
		ctx := context.Background()
		var exists bool
		if err := owner.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, name).Scan(&exists); err != nil || !exists {
			return
		}
		if _, err := owner.Exec(ctx, `DROP OWNED BY `+name); err != nil {
			t.Errorf("drop owned by %s: %v", name, err)
		}
		if _, err := owner.Exec(ctx, `DROP ROLE `+name); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	return name
}

func currentDB(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var db string
	if err := pool.QueryRow(context.Background(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	return db
}

// connectAs opens a pool on the owner's database as another role, straight to Postgres (the
// local PgBouncer knows only its listed users; in AWS the proxy knows the role from its
// secret). The test server trusts loopback, so the password is not what is checked here:
// TestSCRAMVerifierMatchesPostgres is.
func connectAs(t *testing.T, dbURL, role, password string) *pgxpool.Pool {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	server := testenv.DefaultDatabaseURL
	if v := os.Getenv("TEST_DATABASE_URL"); v != "" {
		server = v
	}
	direct, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = direct.Host
	u.User = url.UserPassword(role, password)
	pool, err := store.Open(context.Background(), u.String(), 4)
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(pool.Close) // registered after appRole's cleanup, so it runs first
	return pool
}

// TestEnsureAppRole: the application role can do the shop's work (create a product, reserve,
// list and release holds) and cannot change the schema or the migrations' bookkeeping;
// running EnsureAppRole again (the next deploy) is fine and grants tables created since.
func TestEnsureAppRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, dbURL := testenv.Postgres(t)
	role := appRole(t, owner)
	if err := store.EnsureAppRole(ctx, owner, role, "first-Password-1"); err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureAppRole(ctx, owner, role, "second-Password-2"); err != nil {
		t.Fatalf("second run: %v", err)
	}
	app := connectAs(t, dbURL, role, "second-Password-2")
	var who string
	if err := app.QueryRow(ctx, `SELECT current_user`).Scan(&who); err != nil || who != role {
		t.Fatalf("connected as %q (%v), want %s", who, err, role)
	}

	svc := shop.NewService(store.New(app), stock.New(testenv.Redis(t)))
	svc.Log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	if _, err := svc.UpsertProduct(ctx, "p1", shop.ProductInput{Name: "P1", PriceCents: 1500, Currency: "usd", Stock: 5, MaxPerUser: 2}); err != nil {
		t.Fatalf("upsert product as %s: %v", role, err)
	}
	r, err := svc.Reserve(ctx, shop.ReserveRequest{UserID: "u1", ProductID: "p1", Quantity: 2, IdemKey: "k1"})
	if err != nil {
		t.Fatalf("reserve as %s: %v", role, err)
	}
	mine, err := svc.ListMine(ctx, "u1")
	if err != nil || len(mine) != 1 {
		t.Fatalf("list holds as %s: %v %v", role, mine, err)
	}
	if err := svc.Release(ctx, "u1", r.ID); err != nil {
		t.Fatalf("release as %s: %v", role, err)
	}
	if _, err := svc.Sweep(ctx); err != nil {
		t.Fatalf("sweep as %s: %v", role, err)
	}

	denied := []string{
		`DROP TABLE reservations`,
		`ALTER TABLE products ADD COLUMN evil text`,
		`TRUNCATE products`,
		`CREATE TABLE evil (id int)`,
		`CREATE INDEX evil ON products (name)`,
		`INSERT INTO schema_migrations (version) VALUES (9999)`,
		`DELETE FROM schema_migrations`,
		`SELECT count(*) FROM schema_migrations`,
		`ALTER SEQUENCE gate_generations RESTART`,
		`CREATE ROLE evil`,
	}
	for _, sql := range denied {
		_, err := app.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s as %s: %v, want insufficient_privilege (42501)", sql, role, err)
		}
	}

	// A later migration's table is granted by the next run.
	if _, err := owner.Exec(ctx, `CREATE TABLE later (id int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, `INSERT INTO later VALUES (1)`); err == nil {
		t.Fatal("the role wrote a table created after EnsureAppRole ran")
	}
	if err := store.EnsureAppRole(ctx, owner, role, "second-Password-2"); err != nil {
		t.Fatalf("third run: %v", err)
	}
	if _, err := app.Exec(ctx, `INSERT INTO later VALUES (1)`); err != nil {
		t.Fatalf("the next run did not grant the new table: %v", err)
	}

	var super, createRole, createDB bool
	if err := owner.QueryRow(ctx, `SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1`, role).Scan(&super, &createRole, &createDB); err != nil {
		t.Fatal(err)
	}
	if super || createRole || createDB {
		t.Errorf("%s: superuser %v, createrole %v, createdb %v; want none", role, super, createRole, createDB)
	}
}

// TestEnsureAppRoleConcurrent: two migrate runs at once (an operator's invoke during a
// deploy) both succeed: the transaction lock serializes the role's creation.
func TestEnsureAppRoleConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, _ := testenv.Postgres(t)
	role := appRole(t, owner)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- store.EnsureAppRole(ctx, owner, role, "same-Password-"+strconv.Itoa(i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestEnsureAppRoleRefusesBadInput: names that are not plain identifiers and empty or
// non-ASCII passwords change nothing.
func TestEnsureAppRoleRefusesBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, _ := testenv.Postgres(t)
	for _, tt := range []struct{ name, password string }{
		{"app; DROP TABLE products", "pw"},
		{"App", "pw"},
		{"", "pw"},
		{"lu_app_ok", ""},
		{"lu_app_ok", "pässword"},
	} {
		if err := store.EnsureAppRole(ctx, owner, tt.name, tt.password); err == nil {
			t.Errorf("EnsureAppRole(%q, %q) succeeded", tt.name, tt.password)
		}
	}
	var n int
	if err := owner.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = 'lu_app_ok'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("a role was created (%d, %v)", n, err)
	}
	if err := owner.QueryRow(ctx, `SELECT count(*) FROM products`).Scan(&n); err != nil {
		t.Errorf("products: %v", err)
	}
}

// TestSCRAMVerifierMatchesPostgres: the verifier EnsureAppRole stores is the one Postgres
// itself computes for the same password, salt and iterations, so a login with the password
// works wherever the server checks it (RDS, RDS Proxy); and the server keeps it as given.
func TestSCRAMVerifierMatchesPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, _ := testenv.Postgres(t)
	role := appRole(t, owner)
	const password = "Gen3rated-Secret_with.punct!~"
	// Postgres hashes a plain password itself (password_encryption = scram-sha-256).
	err := pgx.BeginFunc(ctx, owner, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL password_encryption = 'scram-sha-256'`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s PASSWORD '%s'`, role, password))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	server := rolPassword(t, owner, role)
	// SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>
	head, _, _ := strings.Cut(strings.TrimPrefix(server, "SCRAM-SHA-256$"), "$")
	iterText, saltText, _ := strings.Cut(head, ":")
	iter, err := strconv.Atoi(iterText)
	if err != nil {
		t.Fatalf("server verifier %q", server)
	}
	salt, err := base64.StdEncoding.DecodeString(saltText)
	if err != nil {
		t.Fatalf("server verifier %q", server)
	}
	mine, err := store.ScramVerifier(password, salt, iter)
	if err != nil {
		t.Fatal(err)
	}
	if mine != server {
		t.Fatalf("verifier\n ours     %s\n postgres %s", mine, server)
	}
	if _, err := store.ScramVerifier(password+"x", salt, iter); err != nil {
		t.Fatal(err)
	}
	if wrong, _ := store.ScramVerifier(password+"x", salt, iter); wrong == server {
		t.Fatal("another password gave the same verifier")
	}

	if err := store.EnsureAppRole(ctx, owner, role, password); err != nil {
		t.Fatal(err)
	}
	stored := rolPassword(t, owner, role)
	if !strings.HasPrefix(stored, "SCRAM-SHA-256$4096:") || stored == server {
		t.Fatalf("after EnsureAppRole the role's password is %q, want a fresh SCRAM verifier", stored)
	}
	head, _, _ = strings.Cut(strings.TrimPrefix(stored, "SCRAM-SHA-256$"), "$")
	_, saltText, _ = strings.Cut(head, ":")
	salt, _ = base64.StdEncoding.DecodeString(saltText)
	if again, _ := store.ScramVerifier(password, salt, 4096); again != stored {
		t.Fatalf("the stored verifier %q is not the password's (%q): Postgres hashed our string as a plain password", stored, again)
	}
}

func rolPassword(t *testing.T, pool *pgxpool.Pool, role string) string {
	t.Helper()
	var pw string
	if err := pool.QueryRow(context.Background(), `SELECT rolpassword FROM pg_authid WHERE rolname = $1`, role).Scan(&pw); err != nil {
		t.Fatalf("read %s's password: %v", role, err)
	}
	return pw
}
