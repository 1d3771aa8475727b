// Package herd is benchmark support: it reproduces the drop moment on Lambda's shape, many
// execution environments cold-starting in the same instant, each serving one event at a time.
// The drop benchmark (cmd/bench/dropbench, `make bench-drop`) and the reserve function's drop
// test (functions/reserve/drop_test.go) use it to run the functions' real cold start and
// handler, and to watch the database's server connections while they do. No function imports
// it: it lives with the benchmarks, not in shared/.
package herd

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

// Env is one execution environment after its cold start: Invoke serves one event (API
// Gateway's payload) and answers the function's response payload, as the Lambda runtime
// would pass them; Close frees its clients.
type Env struct {
	Invoke func(ctx context.Context, payload []byte) ([]byte, error)
	Close  func()
}

// Config is one herd.
type Config struct {
	// Envs is how many execution environments start at once; Invocations how many events each
	// then serves, one after the other.
	Envs, Invocations int
	// Start is an environment's cold start, exactly as the function's main does it.
	Start func(ctx context.Context, env int) (Env, error)
	// Event is the payload of an environment's i-th event.
	Event func(env, i int) []byte
}

// Result is what a herd saw.
type Result struct {
	Invocations int         // events sent
	Failed      int         // cold starts that failed count every event of theirs; plus invocation errors
	Statuses    map[int]int // HTTP status of each answered event
	ColdStart   []time.Duration
	Latency     []time.Duration // each answered event, from its send to its answer
	Wall        time.Duration   // from the first cold start to the last answer
	Errors      []string        // the first few failures, for the log
}

// Run starts every environment at once (a barrier, as a drop opens) and has each serve its
// events; it returns when all are done.
func Run(ctx context.Context, c Config) Result {
	res := Result{Statuses: map[int]int{}}
	var mu sync.Mutex
	fail := func(n int, err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Failed += n
		if len(res.Errors) < 10 {
			res.Errors = append(res.Errors, err.Error())
		}
	}
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for e := range c.Envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			t0 := time.Now()
			env, err := c.Start(ctx, e)
			cold := time.Since(t0)
			if err != nil {
				fail(c.Invocations, fmt.Errorf("cold start of environment %d: %w", e, err))
				return
			}
			defer env.Close()
			mu.Lock()
			res.ColdStart = append(res.ColdStart, cold)
			mu.Unlock()
			for i := range c.Invocations {
				t := time.Now()
				out, err := env.Invoke(ctx, c.Event(e, i))
				d := time.Since(t)
				if err != nil {
					fail(1, fmt.Errorf("environment %d event %d: %w", e, i, err))
					continue
				}
				var r struct {
					StatusCode int `json:"statusCode"`
				}
				if err := json.Unmarshal(out, &r); err != nil || r.StatusCode == 0 {
					fail(1, fmt.Errorf("environment %d event %d: no status in %q", e, i, out))
					continue
				}
				mu.Lock()
				res.Statuses[r.StatusCode]++
				res.Latency = append(res.Latency, d)
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	res.Invocations = c.Envs * c.Invocations
	close(gate)
	wg.Wait()
	res.Wall = time.Since(start)
	return res
}

// Count5xx is how many answered events had a 5xx status.
func (r Result) Count5xx() int {
	n := 0
	for s, c := range r.Statuses {
		if s >= 500 {
			n += c
		}
	}
	return n
}

// Percentile returns the p-th percentile (0..100) of ds; 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// Watch samples how many server connections Postgres has open to database db (through
// admin, a connection that does not go through the pooler) every period until stop is
// called; stop returns the peak it saw, or the first error of a sample.
func Watch(ctx context.Context, admin *pgxpool.Pool, db string, period time.Duration) (stop func() (int, error)) {
	ctx, cancel := context.WithCancel(ctx)
	var peak int
	var first error
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			var n int
			err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, db).Scan(&n)
			switch {
			case err == nil && n > peak:
				peak = n
			case err != nil && ctx.Err() == nil && first == nil:
				first = fmt.Errorf("sample pg_stat_activity: %w", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() (int, error) {
		cancel()
		<-done
		return peak, first
	}
}

// Transactions returns how many transactions the pooler at addr (PgBouncer's admin console,
// SHOW STATS) has passed to database db so far: the difference across a run says how often
// the run touched Postgres.
func Transactions(ctx context.Context, addr, db string) (int64, error) {
	cfg, err := pgx.ParseConfig("postgres://postgres@" + addr + "/pgbouncer?sslmode=disable")
	if err != nil {
		return 0, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol // all the admin console speaks
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("pgbouncer admin console: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SHOW STATS")
	if err != nil {
		return 0, fmt.Errorf("show stats: %w", err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		raw := rows.RawValues()
		for i, f := range rows.FieldDescriptions() {
			if f.Name == "database" && string(raw[i]) != db {
				break
			}
			if f.Name == "total_xact_count" {
				n, _ = strconv.ParseInt(string(raw[i]), 10, 64)
			}
		}
	}
	return n, rows.Err()
}

// StartReserve is one execution environment of the reserve function cold-starting exactly as
// functions/reserve/main.go does (config.Start is MustOpen without the exit), returning the
// handler lambda.Start would run.
func StartReserve(ctx context.Context, log *slog.Logger) (Env, error) {
	app, err := config.Start(ctx, log)
	if err != nil {
		return Env{}, err
	}
	h := app.Handler(handler.Reserve(app.Shop, app.Log).Serve)
	return Env{Invoke: h.Invoke, Close: app.Close}, nil
}

// ReserveEvent is API Gateway's event (HTTP API, payload 2.0) for one shopper's
// POST /reservations of one unit, after the JWT authorizer passed the shopper's claims.
func ReserveEvent(user, product string) []byte {
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: handler.RouteReserve, RawPath: "/reservations",
		Headers: map[string]string{"content-type": "application/json"},
		Body:    fmt.Sprintf(`{"product_id":%q,"quantity":1}`, product),
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: handler.RouteReserve, Stage: "$default", RequestID: "drop-" + user,
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/reservations", Protocol: "HTTP/1.1"},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": user}},
			},
		},
	}
	b, _ := json.Marshal(ev)
	return b
}

// EntryEvent is a POST /products/{id}/entry event from user for a one-variant draw product.
func EntryEvent(user, product string) []byte {
	path := "/products/" + product + "/entry"
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: handler.RouteEnter, RawPath: path,
		Headers:        map[string]string{"content-type": "application/json"},
		PathParameters: map[string]string{"id": product},
		Body:           `{"quantity":1}`,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: handler.RouteEnter, Stage: "$default", RequestID: "entry-" + user,
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: path, Protocol: "HTTP/1.1"},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": user}},
			},
		},
	}
	b, _ := json.Marshal(ev)
	return b
}
