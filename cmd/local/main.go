// Command local is the local runner: the whole of lastunit in one process on one machine.
// It serves every function's handler unchanged, the way API Gateway, EventBridge and SQS
// would invoke it, against real Postgres and Redis. See API.md, "The local runner".
package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/config"
	"lastunit/shared/handler"
	"lastunit/shared/store"
)

func main() {
	log := config.Logger()
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		if err := migrate(); err != nil {
			log.Error("migrate", "err", err.Error())
			os.Exit(1)
		}
		log.Info("migrated")
		return
	}
	if err := run(log); err != nil {
		log.Error("local runner", "err", err.Error())
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	app, err := config.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()

	addr := os.Getenv("LOCAL_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	secret := os.Getenv("LOCAL_JWT_SECRET")
	if secret == "" {
		secret = DefaultJWTSecret
	}
	health := func(ctx context.Context) error {
		if err := app.Pool.Ping(ctx); err != nil {
			return errors.New("postgres: " + err.Error())
		}
		if err := app.Redis.Ping(ctx).Err(); err != nil {
			return errors.New("redis: " + err.Error())
		}
		return nil
	}
	srv := newServer(app.Log, []byte(secret), health, handler.Reserve(app.Shop, app.Log), handler.Admin(app.Shop, app.Log))

	expire := handler.Expire(app.Shop, app.Log)
	go every(ctx, cfg.ExpireEvery, func(ctx context.Context) {
		expire(ctx, events.EventBridgeEvent{ID: "local-" + time.Now().UTC().Format(time.RFC3339), Source: "aws.events", DetailType: "Scheduled Event"}) //nolint:errcheck
	})

	hs := &http.Server{Addr: addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	log.Info("listening", "addr", "http://"+addr, "expire_every", cfg.ExpireEvery.String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(shut)
}

// migrate applies the migrations to DATABASE_URL and exits (`make migrate`).
func migrate() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	pool, err := store.Open(context.Background(), cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	return store.Migrate(context.Background(), pool)
}

// every runs fn each period until ctx ends, as an EventBridge schedule would.
func every(ctx context.Context, period time.Duration, fn func(context.Context)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}
