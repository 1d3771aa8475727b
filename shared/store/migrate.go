package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLock is the advisory lock key that serializes migrations across processes.
const migrateLock = 7_240_611

// Migrate applies the embedded migrations that the database does not have yet, each file in its
// own transaction under a transaction-scoped advisory lock, so that concurrent runs do not race
// and nothing depends on session state: it works through PgBouncer in transaction pooling mode.
// It runs once per deploy (the migrate function) or at the local runner's start, never at a
// function's cold start.
//
// Migrations run while the old functions still serve traffic (docs/variants.md), so no file
// may hold a lock that stops them for long: each transaction waits at most lockTimeout for a
// lock (a DDL lock queued behind a long transaction would stop every request queued behind it)
// and is tried again after a pause. A file whose first line is "-- lastunit:no-transaction" runs
// outside a transaction, one statement at a time (CREATE INDEX CONCURRENTLY); its statements must
// be safe to run again, and the file is recorded as applied once they all succeeded.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return MigrateUpTo(ctx, pool, math.MaxInt)
}

// MigrateUpTo is Migrate for the migrations numbered up to last (tests build a database at an
// older schema with it).
func MigrateUpTo(ctx context.Context, pool *pgxpool.Pool, last int) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: list: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migrate: %s: name must start with a number: %w", base, err)
		}
		if version > last {
			break
		}
		sql, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("migrate: read %s: %w", base, err)
		}
		for try := 1; ; try++ {
			err = migrateOne(ctx, pool, version, string(sql))
			if !isLockTimeout(err) || try == lockTries {
				break
			}
			select { // someone held a lock we need: let their traffic through, then try again
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(min(time.Duration(try)*100*time.Millisecond, 2*time.Second)):
			}
		}
		if err != nil {
			return fmt.Errorf("migrate: apply %s: %w", base, err)
		}
	}
	return nil
}

// lockTimeout bounds each migration statement's wait for a lock, well below Postgres's
// deadlock_timeout (1 s): a migration whose lock wait closes a cycle with the traffic gives up
// first, so the deadlock detector never picks a request as the victim. lockTries is how often
// a file is tried again when it timed out.
const (
	lockTimeout = "200ms"
	lockTries   = 50
	noTx        = "-- lastunit:no-transaction"
)

func isLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// migrateOne applies one file unless the database has it.
func migrateOne(ctx context.Context, pool *pgxpool.Pool, version int, sql string) error {
	begin := func() (pgx.Tx, bool, error) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("begin: %w", translate(err))
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, false, fmt.Errorf("lock: %w", translate(err))
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, false, fmt.Errorf("create schema_migrations: %w", translate(err))
		}
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, version).Scan(&done); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, false, fmt.Errorf("check %d: %w", version, translate(err))
		}
		return tx, done, nil
	}
	record := func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version); err != nil {
			return fmt.Errorf("record %d: %w", version, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit: %w", translate(err))
		}
		return nil
	}
	tx, done, err := begin()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(sql, noTx) {
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
		if done {
			return nil
		}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+lockTimeout+`'`); err != nil {
			return translate(err)
		}
		if _, err := tx.Exec(ctx, sql); err != nil {
			return err
		}
		return record(tx)
	}
	// Outside a transaction (the one above only answered "not applied yet"), one migrator at a
	// time (a lease row: session locks do not survive the pooler), then recorded. Every
	// transaction ends before the lease is given back (a pool of one connection needs it).
	_ = tx.Rollback(ctx)
	if done {
		return nil
	}
	unlock, err := migrateLease(ctx, pool, version)
	if err != nil {
		return err
	}
	defer unlock()
	for _, stmt := range strings.Split(sql, ";\n") {
		if strings.TrimSpace(stripComments(stmt)) == "" {
			continue
		}
		if err := dropInvalidIndex(ctx, pool, stmt); err != nil {
			return err
		}
		if _, err := pool.Exec(ctx, stmt); err != nil {
			return translate(err)
		}
	}
	tx, done, err = begin()
	if err != nil {
		return err
	}
	if done {
		return tx.Rollback(ctx)
	}
	if err := record(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return nil
}

// migrateLease takes the lease "migrate:<version>" (a row of the leases table), waiting while
// another migrator has it; a migrator that died frees it when it runs out.
func migrateLease(ctx context.Context, pool *pgxpool.Pool, version int) (func(), error) {
	name, holder := fmt.Sprintf("migrate:%d", version), fmt.Sprintf("m_%d", time.Now().UnixNano())
	for {
		now := time.Now()
		tag, err := pool.Exec(ctx, `INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until WHERE leases.until <= $4`,
			name, holder, now.Add(30*time.Minute), now)
		if err != nil {
			return nil, fmt.Errorf("take lease %s: %w", name, translate(err))
		}
		if tag.RowsAffected() == 1 {
			return func() {
				_, _ = pool.Exec(context.WithoutCancel(ctx), `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder)
			}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// createIndexName finds the index a "CREATE INDEX CONCURRENTLY IF NOT EXISTS name" makes.
var createIndexName = regexp.MustCompile(`(?i)CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)`)

// dropInvalidIndex drops the invalid index an interrupted CREATE INDEX CONCURRENTLY of stmt
// left behind (IF NOT EXISTS would keep it, unusable); the caller holds the file's lease.
func dropInvalidIndex(ctx context.Context, pool *pgxpool.Pool, stmt string) error {
	m := createIndexName.FindStringSubmatch(stripComments(stmt))
	if m == nil {
		return nil
	}
	var invalid bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relname = $1 AND NOT i.indisvalid)`, strings.ToLower(m[1])).Scan(&invalid)
	if err != nil {
		return fmt.Errorf("look for invalid index %s: %w", m[1], translate(err))
	}
	if invalid {
		if _, err := pool.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+pgx.Identifier{strings.ToLower(m[1])}.Sanitize()); err != nil {
			return fmt.Errorf("drop invalid index %s: %w", m[1], translate(err))
		}
	}
	return nil
}

// stripComments drops the SQL line comments of a statement.
func stripComments(stmt string) string {
	var b strings.Builder
	for _, line := range strings.Split(stmt, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line)
			b.WriteString("\n")
		}
	}
	return b.String()
}
