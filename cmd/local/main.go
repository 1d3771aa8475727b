// Command local is the local runner: the whole of lastunit in one process on one machine.
// It serves every function's handler unchanged, the way API Gateway, EventBridge and SQS
// would invoke it, against real Postgres and Redis, plus what only a developer's machine needs:
// a stand-in OpenID provider for the pages' sign-in (oidc.go), dev tokens, test payments and
// injected faults (the runner-only routes of web/api/openapi.yaml). `make dev` builds and runs
// it; docs/local-runner.md describes it. The benchmark programs live in cmd/bench.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/config"
	"lastunit/shared/handler"
	"lastunit/shared/queue"
	"lastunit/shared/store"
	"lastunit/web"
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
	localDefaults()
	wsDefaults()
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	app, err := config.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()
	if err := app.Queue.Ensure(ctx, cfg.FulfillVisibility); err != nil {
		return err
	}

	addr := os.Getenv("LOCAL_ADDR")
	warnExposure(log, addr, os.Getenv("LOCAL_JWT_SECRET"))
	srv := newServer(app.Log, []byte(os.Getenv("LOCAL_JWT_SECRET")), health(app),
		handler.Reserve(app.Shop, app.Log), handler.Admin(app.Shop, app.Log),
		handler.Checkout(app.Shop, app.Log), handler.Webhook(app.Shop, app.Stripe, app.Log))
	srv.allowHosts(os.Getenv("LOCAL_ALLOWED_HOSTS"))
	p := &payer{auth: srv.identity, orders: app.Shop.Store, secret: cfg.StripeWebhookSecret, webhook: "http://" + addr + handler.RouteStripeWebhook[len("POST "):], client: &http.Client{Timeout: 30 * time.Second}}
	srv.handle("POST /_local/pay/{order_id}", p.pay)
	f := &faults{}
	app.Shop.Fault = f.hook
	srv.handle("PUT /_local/faults", f.put)
	op, err := newOIDCProvider(os.Getenv("LOCAL_OIDC_ISSUER"), os.Getenv("LOCAL_OIDC_KEY"))
	if err != nil {
		return err
	}
	srv.serveOIDC(op)
	srv.servePages(web.Config{Local: true, StripePublishableKey: os.Getenv("STRIPE_PUBLISHABLE_KEY"),
		Auth: authConfig(StoreClientID), AdminAuth: authConfig(AdminClientID)})
	live, err := startLive(ctx, app, srv) // /ws, /@connections, the stock-updates queue and its poller
	if err != nil {
		return err
	}
	defer live.closeAll()

	fulfillURL, err := app.Queue.URL(ctx, queue.Fulfill)
	if err != nil {
		return err
	}
	go poll(ctx, app.Log, app.Queue.Client, fulfillURL, "arn:aws:sqs:us-east-1:000000000000:"+app.Queue.Name(queue.Fulfill), handler.Fulfill(app.Shop, app.Log))
	janitor := handler.Janitor(app.Shop, app.Log)
	go every(ctx, cfg.JanitorEvery, func(ctx context.Context) {
		janitor(ctx, scheduled()) //nolint:errcheck
	})

	expire := handler.Expire(app.Shop, app.Log)
	go every(ctx, cfg.ExpireEvery, func(ctx context.Context) {
		expire(ctx, scheduled()) //nolint:errcheck
	})

	hs := srv.configure(&http.Server{Addr: addr})
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

// localDefaults fills the environment with the defaults that match `make services`.
// Only the runner has defaults for secrets; a deployed function without them does not start.
func localDefaults() {
	for k, v := range map[string]string{
		"LOCAL_ADDR":            "127.0.0.1:8080",
		"LOCAL_JWT_SECRET":      DefaultJWTSecret,
		"SQS_ENDPOINT":          "http://127.0.0.1:9324",
		"STRIPE_API_BASE":       "http://127.0.0.1:12111",
		"STRIPE_SECRET_KEY":     "sk_test_local",
		"STRIPE_WEBHOOK_SECRET": "whsec_lastunit_local",
		// One process serves every function here, so it needs a bigger pool than one Lambda
		// (pgxpool's default, max(4, cores), caps a 2-core machine near 4.5k reserves/s).
		"DB_MAX_CONNS": "16",
		// The runner applies the migrations at its start (a deployed function never does).
		"MIGRATE_ON_START": "true",
	} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	// The runner's OpenID provider names itself after the runner's address (oidc.go).
	if os.Getenv("LOCAL_OIDC_ISSUER") == "" {
		os.Setenv("LOCAL_OIDC_ISSUER", "http://"+os.Getenv("LOCAL_ADDR"))
	}
}

// beyondLoopback reports whether a runner listening on addr can be reached from other
// machines: any address but a loopback IP or "localhost" (an empty host, 0.0.0.0 and :: are
// every interface; a host name may resolve anywhere).
func beyondLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// warnExposure warns, at start, when the runner listens beyond loopback: whoever reaches it
// can mint tokens (admin ones too) at POST /_local/token, pay orders, inject faults, and with
// the secret sign in as an admin. It says louder when the secret is the public default.
func warnExposure(log *slog.Logger, addr, secret string) {
	if !beyondLoopback(addr) {
		return
	}
	log.Warn("the runner listens beyond loopback: anyone who can reach it can mint tokens, admin ones too, "+
		"at POST /_local/token, pay orders and inject faults (docs/security-notes.md); listen on 127.0.0.1 unless you mean it",
		"addr", addr)
	if secret == DefaultJWTSecret {
		log.Warn("LOCAL_JWT_SECRET is the public default: anyone who can reach the runner can also sign tokens "+
			"and tick the sign-in page's admin box; set a secret of your own", "addr", addr)
	}
}

// health is /healthz: every dependency answers.
func health(app *config.App) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := store.Ping(ctx, app.Pool); err != nil {
			return errors.New("postgres: " + err.Error())
		}
		if err := app.Redis.Ping(ctx).Err(); err != nil {
			return errors.New("redis: " + err.Error())
		}
		if _, err := app.Queue.URL(ctx, queue.Fulfill); err != nil {
			return errors.New("sqs: " + err.Error())
		}
		if base := app.Config.StripeAPIBase; base != "" {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/balance", nil)
			req.Header.Set("Authorization", "Bearer "+app.Config.StripeSecretKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return errors.New("stripe: " + err.Error())
			}
			resp.Body.Close()
		}
		return nil
	}
}

// migrate applies the migrations to DATABASE_URL and exits (`make migrate`).
func migrate() error {
	localDefaults()
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

// scheduled is the event an EventBridge schedule sends.
func scheduled() events.EventBridgeEvent {
	now := time.Now().UTC()
	return events.EventBridgeEvent{ID: "local-" + now.Format(time.RFC3339Nano), Source: "aws.events", DetailType: "Scheduled Event", Time: now}
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
