// Package config reads lastunit's settings from the environment and builds its clients once
// per cold start. Secrets come only from the environment (in AWS: from Secrets Manager and
// SSM, put there by the CDK stack); nothing secret has a default outside local mode.
package config

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"lastunit/shared/payment"
	"lastunit/shared/queue"
	"lastunit/shared/rooms"
	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/store"
)

// Config is every setting the functions and the local runner read.
type Config struct {
	DatabaseURL    string
	RedisURL       string
	DBMaxConns     int32
	ReservationTTL time.Duration
	PaymentWindow  time.Duration
	ExpireEvery    time.Duration
	JanitorEvery   time.Duration
	FailedJobAge   time.Duration
	// FulfillVisibility is how long a failed fulfillment waits before SQS delivers it again.
	FulfillVisibility time.Duration
	// Drops: how long an admitted ticket may reserve, and each shopper's token bucket
	// (requests per second on average, SHOPPER_RATE 0 turns it off; burst).
	AdmissionWindow time.Duration
	// DrawOfferWindow is how long a draw's offer holds its units (DRAW_OFFER_WINDOW).
	DrawOfferWindow time.Duration
	ShopperRate     float64
	ShopperBurst    int64
	// Migrate applies migrations when the App opens (MIGRATE_ON_START): the local runner does;
	// deployed functions never do (the stack's migrate step runs them once per deploy).
	Migrate bool

	// SQS: the emulator's endpoint locally (""/unset in AWS), the queue name prefix, and
	// the queue URLs where the stack provides them.
	SQSEndpoint     string
	QueuePrefix     string
	FulfillQueueURL string
	FulfillDLQURL   string

	// Live stock (live.go): the stock-updates queue, the WebSocket management API, tokens.
	Live LiveConfig

	// Stripe. Secrets have no defaults here: the local runner supplies local ones.
	StripeSecretKey     string
	StripeAPIBase       string
	StripeWebhookSecret string
}

// Defaults match `make services` on one machine.
const (
	// DefaultDatabaseURL goes through PgBouncer (transaction pooling, `make services`), the
	// local stand-in for RDS Proxy, so that anything that breaks under pooling breaks here too.
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:6432/lastunit?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// Load reads the environment. Durations use Go syntax ("10m", "30s").
func Load() (Config, error) {
	c := Config{
		DatabaseURL: env("DATABASE_URL", DefaultDatabaseURL),
		RedisURL:    env("REDIS_URL", DefaultRedisURL),
		Migrate:     env("MIGRATE_ON_START", "false") == "true",

		SQSEndpoint:     os.Getenv("SQS_ENDPOINT"),
		QueuePrefix:     env("QUEUE_PREFIX", "lastunit-"),
		FulfillQueueURL: os.Getenv("FULFILL_QUEUE_URL"),
		FulfillDLQURL:   os.Getenv("FULFILL_DLQ_URL"),
		Live:            loadLive(),

		StripeSecretKey:     os.Getenv("STRIPE_SECRET_KEY"),
		StripeAPIBase:       os.Getenv("STRIPE_API_BASE"),
		StripeWebhookSecret: os.Getenv("STRIPE_WEBHOOK_SECRET"),
	}
	n, err := strconv.Atoi(env("DB_MAX_CONNS", "0"))
	if err != nil {
		return c, fmt.Errorf("DB_MAX_CONNS: %w", err)
	}
	c.DBMaxConns = int32(n)
	for _, d := range []struct {
		name string
		def  string
		dst  *time.Duration
	}{
		{"RESERVATION_TTL", "10m", &c.ReservationTTL},
		{"PAYMENT_WINDOW", "15m", &c.PaymentWindow},
		{"EXPIRE_EVERY", "30s", &c.ExpireEvery},
		{"JANITOR_EVERY", "24h", &c.JanitorEvery},
		{"FAILED_JOB_MAX_AGE", "24h", &c.FailedJobAge},
		{"FULFILL_VISIBILITY", "30s", &c.FulfillVisibility},
		{"ADMISSION_WINDOW", "2m", &c.AdmissionWindow},
		{"DRAW_OFFER_WINDOW", "1h", &c.DrawOfferWindow},
	} {
		v, err := time.ParseDuration(env(d.name, d.def))
		if err != nil || v <= 0 {
			return c, fmt.Errorf("%s must be a positive Go duration such as %s", d.name, d.def)
		}
		*d.dst = v
	}
	if c.ShopperRate, err = strconv.ParseFloat(env("SHOPPER_RATE", "5"), 64); err != nil || c.ShopperRate < 0 {
		return c, fmt.Errorf("SHOPPER_RATE must be a number of requests per second, 0 or more")
	}
	if c.ShopperBurst, err = strconv.ParseInt(env("SHOPPER_BURST", "10"), 10, 64); err != nil || c.ShopperBurst < 1 {
		return c, fmt.Errorf("SHOPPER_BURST must be a whole number of requests, 1 or more")
	}
	return c, nil
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// App is the clients and the service, built once per cold start.
type App struct {
	Config Config
	Log    *slog.Logger
	Pool   *pgxpool.Pool
	Redis  *redis.Client
	Shop   *shop.Service
	Stripe *payment.Stripe // nil without STRIPE_SECRET_KEY
	Queue  *queue.Queue
	// Live stock: the connection table, and the notifier the shop tells of stock changes.
	Rooms    *rooms.Table
	Notifier *rooms.Notifier
}

// Logger returns the JSON logger every function uses.
func Logger() *slog.Logger { return slog.New(slog.NewJSONHandler(os.Stdout, nil)) }

// redisDialTimeout bounds a new Redis connection, its retries included.
const redisDialTimeout = 8 * time.Second

// Open builds the clients and the service without talking to any of them: pools connect on
// first use, so a cold start never waits on Postgres, Redis or SQS, and a dependency that is
// down costs the requests that need it a 503 (never an init crash, which API Gateway turns
// into a bare 500). Only when c.Migrate is set (the local runner) does it apply migrations.
//
// opts go to the pool (store.Open): Start passes the rotating database password in AWS.
func Open(ctx context.Context, c Config, log *slog.Logger, opts ...store.Option) (*App, error) {
	pool, err := store.Open(ctx, c.DatabaseURL, c.DBMaxConns, opts...)
	if err != nil {
		return nil, err
	}
	if c.Migrate {
		if err := store.Migrate(ctx, pool); err != nil {
			pool.Close()
			return nil, err
		}
	}
	opt, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	if !strings.Contains(c.RedisURL, "dial_timeout=") {
		// A drop starts a thousand environments at once, each dialling Redis for the first
		// time: be patient with that first connection (a Redis that is really down still
		// answers 503 well inside the function's timeout).
		opt.DialTimeout = redisDialTimeout
	}
	rdb := redis.NewClient(opt)
	gate := stock.New(rdb)
	svc := shop.NewService(store.New(pool), gate)
	svc.DrawNotify = gate
	svc.Log = log
	svc.HoldTTL = c.ReservationTTL
	svc.PaymentWindow = c.PaymentWindow
	svc.AdmissionWindow, svc.ShopperRate, svc.ShopperBurst = c.AdmissionWindow, c.ShopperRate, c.ShopperBurst
	svc.FailedJobMaxAge = c.FailedJobAge
	svc.DrawOfferWindow = c.DrawOfferWindow
	svc.FulfillDeadline = 3*c.FulfillVisibility + 10*time.Minute
	app := &App{Config: c, Log: log, Pool: pool, Redis: rdb, Shop: svc}
	if c.StripeSecretKey != "" {
		app.Stripe = payment.New(payment.Config{SecretKey: c.StripeSecretKey, APIBase: c.StripeAPIBase, WebhookSecret: c.StripeWebhookSecret})
		svc.Pay = app.Stripe
	}
	app.Queue, err = queue.New(ctx, queue.Config{
		Endpoint: c.SQSEndpoint, Region: os.Getenv("AWS_REGION"), Prefix: c.QueuePrefix,
		URLs: map[string]string{queue.Fulfill: c.FulfillQueueURL, queue.FulfillDLQ: c.FulfillDLQURL,
			queue.StockUpdates: c.Live.StockQueueURL, queue.StockUpdatesDLQ: c.Live.StockDLQURL},
	})
	if err != nil {
		app.Close()
		return nil, err
	}
	svc.Jobs, svc.Dead = app.Queue, app.Queue
	app.openLive()
	return app, nil
}

// Need is a dependency a function cannot start without.
type Need int

// Needs.
const (
	// NeedStripe is the Stripe API key (STRIPE_SECRET_KEY; in AWS STRIPE_SECRET_ARN): every
	// function that calls Stripe.
	NeedStripe Need = iota
	// NeedStripeWebhook is the webhook endpoint's signing secret (STRIPE_WEBHOOK_SECRET; in
	// AWS STRIPE_WEBHOOK_SECRET_ARN): the webhook function only.
	NeedStripeWebhook
)

func (a *App) check(needs []Need) error {
	for _, n := range needs {
		switch {
		case n == NeedStripe && a.Stripe == nil:
			return fmt.Errorf("STRIPE_SECRET_KEY is required (in AWS: the secret STRIPE_SECRET_ARN names)")
		case n == NeedStripeWebhook && a.Config.StripeWebhookSecret == "":
			return fmt.Errorf("STRIPE_WEBHOOK_SECRET is required (in AWS: the secret STRIPE_WEBHOOK_SECRET_ARN names)")
		}
	}
	return nil
}

// Start is a function's cold start: it loads the environment, resolves the secrets the
// environment names, and opens the App (no Postgres, Redis or SQS call: see Open).
func Start(ctx context.Context, log *slog.Logger, needs ...Need) (*App, error) {
	c, err := Load()
	if err != nil {
		return nil, err
	}
	if c, err = Resolve(ctx, c); err != nil { // secrets named by *_SECRET_ARN (secrets.go)
		return nil, err
	}
	var opts []store.Option
	if pw, err := RotatingPassword(ctx, c); err != nil {
		return nil, err
	} else if pw != nil { // the database secret rotates (secrets.go)
		opts = append(opts, store.WithPassword(pw))
	}
	app, err := Open(ctx, c, log, opts...)
	if err != nil {
		return nil, err
	}
	if err := app.check(needs); err != nil {
		app.Close()
		return nil, err
	}
	return app, nil
}

// MustOpen is what a function's main calls once per cold start: Start, or log why it cannot
// and exit (only for a configuration that can never work: a bad setting or a missing key).
func MustOpen(needs ...Need) *App {
	log := Logger()
	app, err := Start(context.Background(), log, needs...)
	if err != nil {
		log.Error("start", "err", err.Error())
		os.Exit(1)
	}
	return app
}

// Close releases the clients.
func (a *App) Close() {
	if a.Notifier != nil {
		a.Notifier.Close()
	}
	a.Pool.Close()
	a.Redis.Close()
}
