package handler_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"lastunit/shared/handler"
	"lastunit/shared/testenv"
)

// TestMigrateHandler: the migrate function's handler migrates, ensures the application role
// with its grants, can run again (the next deploy), and fails the invocation when the
// database cannot be reached (so the deploy's trigger fails and the deploy stops).
func TestMigrateHandler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, url := testenv.Postgres(t)
	var db string
	if err := owner.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	role := "lu_mig_" + strings.TrimPrefix(db, "lu_test_")
	t.Cleanup(func() {
		owner.Exec(context.Background(), `DROP OWNED BY `+role)       //nolint:errcheck
		owner.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) //nolint:errcheck
	})
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	h := handler.Migrate(log, handler.MigrateJob{DatabaseURL: url, AppRole: role, AppPassword: "pw-One-1"})
	for run := 1; run <= 2; run++ {
		rep, err := h(ctx, json.RawMessage(`{}`))
		if err != nil || !rep.Migrated || rep.AppRole != role {
			t.Fatalf("run %d: %+v, %v", run, rep, err)
		}
	}
	var canWrite, canMigrate bool
	if err := owner.QueryRow(ctx, `SELECT has_table_privilege($1, 'reservations', 'INSERT'), has_table_privilege($1, 'schema_migrations', 'INSERT')`, role).
		Scan(&canWrite, &canMigrate); err != nil {
		t.Fatal(err)
	}
	if !canWrite || canMigrate {
		t.Errorf("%s: INSERT on reservations %v (want true), on schema_migrations %v (want false)", role, canWrite, canMigrate)
	}

	bad := handler.Migrate(log, handler.MigrateJob{DatabaseURL: "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2"})
	if rep, err := bad(ctx, nil); err == nil || rep.Migrated {
		t.Fatalf("unreachable database: %+v, %v; want an error", rep, err)
	}
}
