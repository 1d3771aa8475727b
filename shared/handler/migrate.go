package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"lastunit/shared/store"
)

// MigrateJob is what the migrate function does on each invocation.
type MigrateJob struct {
	// DatabaseURL connects as the tables' owner (in AWS: the RDS master secret, through the proxy).
	DatabaseURL string
	// AppRole and AppPassword are the login role every other function connects as; "" (the
	// local runner) ensures no role.
	AppRole, AppPassword string
}

// MigrateReport is the migrate function's answer (the deploy's trigger logs it).
type MigrateReport struct {
	Migrated bool   `json:"migrated"`
	AppRole  string `json:"app_role,omitempty"`
	Ms       int64  `json:"ms"`
}

// Migrate returns the migrate function's handler, invoked once per deploy by the stack's
// trigger (and by an operator, by hand, if ever needed): it applies the migrations the
// database lacks (store.Migrate), then creates or updates the application role and its grants
// (store.EnsureAppRole). It opens its connection per invocation and closes it after, and
// fails the invocation (so the deploy stops before the new code takes traffic) on any error.
// The event is ignored.
func Migrate(log *slog.Logger, job MigrateJob) func(context.Context, json.RawMessage) (MigrateReport, error) {
	return func(ctx context.Context, _ json.RawMessage) (MigrateReport, error) {
		start := time.Now()
		rep, err := migrate(ctx, job)
		rep.Ms = time.Since(start).Milliseconds()
		if err != nil {
			log.Error("migrate", "report", rep, "err", err.Error())
			return rep, err
		}
		log.Info("migrate", "report", rep)
		return rep, nil
	}
}

func migrate(ctx context.Context, job MigrateJob) (MigrateReport, error) {
	var rep MigrateReport
	pool, err := store.Open(ctx, job.DatabaseURL, 1) // one connection: migrations, then the role
	if err != nil {
		return rep, fmt.Errorf("migrate: %w", err)
	}
	defer pool.Close()
	if err := store.Migrate(ctx, pool); err != nil {
		return rep, err
	}
	rep.Migrated = true
	if job.AppRole == "" {
		return rep, nil
	}
	if err := store.EnsureAppRole(ctx, pool, job.AppRole, job.AppPassword); err != nil {
		return rep, err
	}
	rep.AppRole = job.AppRole
	return rep, nil
}
