// Command dropbench measures the drop moment on Lambda's shape (`make bench-drop`): a sale
// opens and every execution environment of the reserve function cold-starts at once, each
// serving one event at a time, against Postgres through PgBouncer with a cap of server
// connections (the local stand-in for RDS Proxy).
//
// Two herds run one after the other, each on a product of its own:
//   - in-process: -envs environments in this process, each cold-started by config.Start (the
//     code functions/reserve/main.go runs, minus the exit) with clients of its own, serving
//     -invocations reserves each through the handler lambda.Start would run;
//   - binaries: -binaries copies of the real reserve binary, each under its own Lambda runtime
//     interface emulator, invoked -binary-invocations times each.
//
// It prints a markdown table: failed invocations, statuses, cold start and invocation p50/p99,
// wall time, reserves/s, peak server connections (pg_stat_activity), Postgres transactions,
// and the holds Postgres and the gate ended with. It exits 1 when an invocation failed, an
// answer was 5xx, or the ledger is not exact; targets are reported, never asserted on time.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"lastunit/cmd/bench/herd"
	"lastunit/shared/config"
	"lastunit/shared/shop"
	"lastunit/shared/store"
)

type options struct {
	admin, pooler, redisAddr, sqs       string
	poolerCap                           int
	envs, invocations, units, maxPer    int
	binaries, binaryInvocations, bUnits int
	bootstrap, rie                      string
}

func main() {
	var o options
	flag.StringVar(&o.admin, "admin", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "Postgres server, direct: creates the database, reads pg_stat_activity")
	flag.StringVar(&o.pooler, "pooler", "127.0.0.1:6442", "PgBouncer address the environments connect through")
	flag.IntVar(&o.poolerCap, "pooler-cap", 20, "the pooler's cap of server connections per database (reported against the peak)")
	flag.StringVar(&o.redisAddr, "redis", "127.0.0.1:6379", "Redis address")
	flag.StringVar(&o.sqs, "sqs", "http://127.0.0.1:9324", "SQS emulator (stock notices)")
	flag.IntVar(&o.envs, "envs", 1000, "in-process execution environments")
	flag.IntVar(&o.invocations, "invocations", 20, "reserves per in-process environment")
	flag.IntVar(&o.units, "units", 1000, "units of the in-process herd's product")
	flag.IntVar(&o.maxPer, "max-per-user", 2, "max_per_user of both products")
	flag.IntVar(&o.binaries, "binaries", 150, "real reserve binaries under the emulator (0: none)")
	flag.IntVar(&o.binaryInvocations, "binary-invocations", 4, "reserves per binary")
	flag.IntVar(&o.bUnits, "binary-units", 200, "units of the binaries' product")
	flag.StringVar(&o.bootstrap, "bootstrap", ".run/drop/bootstrap", "the reserve binary (go build -tags lambda.norpc ./functions/reserve)")
	flag.StringVar(&o.rie, "rie", ".tools/bin/aws-lambda-rie", "the Lambda runtime interface emulator")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "dropbench: FAIL:", err)
		os.Exit(1)
	}
}

// row is one herd's line of the table.
type row struct {
	name                 string
	res                  herd.Result
	peak, txns, holds    int
	available, stock     int64
	coldP50, coldP99     time.Duration
	invokeP50, invokeP99 time.Duration
	coldInFirst          bool // the emulator starts the process on the first event: no separate cold start
}

func run(ctx context.Context, o options) error {
	admin, err := pgxpool.New(ctx, o.admin)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer admin.Close()
	db := fmt.Sprintf("lastunit_drop_%d", os.Getpid()) // this run's own, dropped at its end
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return err
	}
	defer admin.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") //nolint:errcheck
	rdbNum, release, err := claimRedis(ctx, o.redisAddr)
	if err != nil {
		return err
	}
	defer release()

	dbURL := fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", o.pooler, db)
	env := map[string]string{
		"DATABASE_URL": dbURL, "REDIS_URL": fmt.Sprintf("redis://%s/%d", o.redisAddr, rdbNum),
		"DB_MAX_CONNS": "1", "MIGRATE_ON_START": "false", "SQS_ENDPOINT": o.sqs,
		"QUEUE_PREFIX": "lastunit-drop-", "AWS_REGION": "us-east-1",
	}
	for k, v := range env {
		os.Setenv(k, v)
	}
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	// Setup, as a deploy and an admin would: migrate, create the queues and the products.
	setup, err := config.Start(ctx, quiet)
	if err != nil {
		return err
	}
	defer setup.Close()
	if err := setupDB(ctx, setup); err != nil {
		return err
	}
	if _, err := setup.Shop.UpsertProduct(ctx, "drop-a", shop.ProductInput{Name: "Drop A", PriceCents: 9900, Currency: "usd", Stock: int64(o.units), MaxPerUser: int64(o.maxPer)}); err != nil {
		return err
	}
	if _, err := setup.Shop.UpsertProduct(ctx, "drop-b", shop.ProductInput{Name: "Drop B", PriceCents: 9900, Currency: "usd", Stock: int64(o.bUnits), MaxPerUser: int64(o.maxPer)}); err != nil {
		return err
	}

	var rows []row
	fmt.Printf("in-process herd: %d environments × %d reserves for %d units, through PgBouncer %s (cap %d server connections)\n", o.envs, o.invocations, o.units, o.pooler, o.poolerCap)
	r, err := measure(ctx, admin, o.pooler, db, setup, "drop-a", fmt.Sprintf("in-process: %d environments × %d", o.envs, o.invocations), herd.Config{
		Envs: o.envs, Invocations: o.invocations,
		Start: func(ctx context.Context, e int) (herd.Env, error) { return herd.StartReserve(ctx, quiet) },
		Event: func(e, i int) []byte { return herd.ReserveEvent(fmt.Sprintf("a-shopper-%d", e), "drop-a") },
	})
	if err != nil {
		return err
	}
	rows = append(rows, r)
	printTable(os.Stdout, rows, o.poolerCap)

	if o.binaries > 0 {
		fmt.Printf("binaries: %d real reserve binaries under the emulator × %d reserves for %d units\n", o.binaries, o.binaryInvocations, o.bUnits)
		envs, stopAll, err := startBinaries(ctx, o, env)
		if err != nil {
			return errors.Join(err, check(rows))
		}
		r, err := measure(ctx, admin, o.pooler, db, setup, "drop-b", fmt.Sprintf("real binaries under RIE: %d × %d", o.binaries, o.binaryInvocations), herd.Config{
			Envs: o.binaries, Invocations: o.binaryInvocations,
			Start: func(ctx context.Context, e int) (herd.Env, error) { return envs[e], nil },
			Event: func(e, i int) []byte { return herd.ReserveEvent(fmt.Sprintf("b-shopper-%d", e), "drop-b") },
		})
		stopAll()
		if err != nil {
			return errors.Join(err, check(rows))
		}
		r.coldInFirst = true
		rows = append(rows, r)
		printTable(os.Stdout, rows[1:], o.poolerCap)
	}
	fmt.Println()
	fmt.Println("Postgres txns: transactions PgBouncer passed to the database during the herd (SHOW STATS); a hold is one, a sold-out answer none.")
	return check(rows)
}

// check says what went wrong in the herds: failed invocations, 5xx answers, an inexact ledger.
func check(rows []row) error {
	var errs []error
	for _, r := range rows {
		if r.res.Failed > 0 {
			errs = append(errs, fmt.Errorf("%s: %d failed invocations: %v", r.name, r.res.Failed, r.res.Errors))
		}
		if n := r.res.Count5xx(); n > 0 {
			errs = append(errs, fmt.Errorf("%s: %d answers were 5xx", r.name, n))
		}
		if r.holds != r.res.Statuses[201] || int64(r.holds)+r.available != r.stock {
			errs = append(errs, fmt.Errorf("%s: the ledger is not exact: %d holds answered 201, %d units held in Postgres, %d available in the gate, stock %d", r.name, r.res.Statuses[201], r.holds, r.available, r.stock))
		}
	}
	return errors.Join(errs...)
}

// setupDB is the deploy's migrate step and the queues the runner would create.
func setupDB(ctx context.Context, app *config.App) error {
	if err := store.Migrate(ctx, app.Pool); err != nil {
		return err
	}
	if err := app.Queue.Ensure(ctx, 30*time.Second); err != nil {
		return err
	}
	return app.Queue.EnsureStockUpdates(ctx, 30*time.Second)
}

// measure runs one herd and reads what it left behind.
func measure(ctx context.Context, admin *pgxpool.Pool, pooler, db string, setup *config.App, product, name string, c herd.Config) (row, error) {
	time.Sleep(1200 * time.Millisecond) // PgBouncer totals its statistics every second (stats_period)
	before, err := herd.Transactions(ctx, pooler, db)
	if err != nil {
		return row{}, err
	}
	stop := herd.Watch(ctx, admin, db, 10*time.Millisecond)
	res := herd.Run(ctx, c)
	peak, err := stop()
	if err != nil {
		return row{}, err
	}
	time.Sleep(1200 * time.Millisecond)
	after, err := herd.Transactions(ctx, pooler, db)
	if err != nil {
		return row{}, err
	}
	r := row{name: name, res: res, peak: peak, txns: int(after - before)}
	var held, stock int64
	if err := setup.Pool.QueryRow(ctx, `SELECT COALESCE(sum(quantity), 0) FROM reservations WHERE product_id = $1 AND status IN ('reserved', 'checked_out')`, product).Scan(&held); err != nil {
		return row{}, err
	}
	if err := setup.Pool.QueryRow(ctx, `SELECT stock FROM products WHERE id = $1`, product).Scan(&stock); err != nil {
		return row{}, err
	}
	p, err := setup.Shop.Product(ctx, product)
	if err != nil {
		return row{}, err
	}
	r.holds, r.stock, r.available = int(held), stock, p.Available
	r.coldP50, r.coldP99 = herd.Percentile(res.ColdStart, 50), herd.Percentile(res.ColdStart, 99)
	r.invokeP50, r.invokeP99 = herd.Percentile(res.Latency, 50), herd.Percentile(res.Latency, 99)
	return r, nil
}

func printTable(w io.Writer, rows []row, poolerCap int) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| herd | invocations | failed | 5xx | statuses | cold start p50 / p99 | invocation p50 / p99 | wall | invocations/s | peak server conns (cap) | Postgres txns | units held / stock | gate available |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		var st []string
		for _, s := range []int{201, 409, 429, 500, 502, 503} {
			if n := r.res.Statuses[s]; n > 0 {
				st = append(st, fmt.Sprintf("%d×%d", n, s))
			}
		}
		rate := float64(r.res.Invocations) / r.res.Wall.Seconds()
		cold := ms(r.coldP50) + " / " + ms(r.coldP99)
		if r.coldInFirst {
			cold = "in the first invocation" // the emulator starts the process on the first event
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s | %s | %s / %s | %s | %.0f | %d (%d) | %d | %d / %d | %d |\n",
			r.name, r.res.Invocations, r.res.Failed, r.res.Count5xx(), strings.Join(st, ", "),
			cold, ms(r.invokeP50), ms(r.invokeP99), r.res.Wall.Round(time.Millisecond),
			rate, r.peak, poolerCap, r.txns, r.holds, r.stock, r.available)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// claimRedis claims a numbered Redis database the way the tests do (lastunit:testdb:N in DB 0).
func claimRedis(ctx context.Context, addr string) (int, func(), error) {
	ctl := redis.NewClient(&redis.Options{Addr: addr})
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	owner := "dropbench-" + hex.EncodeToString(b)
	for n := 15; n >= 1; n-- {
		key := fmt.Sprintf("lastunit:testdb:%d", n)
		ok, err := ctl.SetNX(ctx, key, owner, 30*time.Minute).Result()
		if err != nil {
			ctl.Close()
			return 0, nil, fmt.Errorf("redis: %w", err)
		}
		if !ok {
			continue
		}
		db := redis.NewClient(&redis.Options{Addr: addr, DB: n})
		db.FlushDB(ctx)
		return n, func() {
			db.FlushDB(context.Background())
			db.Close()
			if v, _ := ctl.Get(context.Background(), key).Result(); v == owner {
				ctl.Del(context.Background(), key)
			}
			ctl.Close()
		}, nil
	}
	ctl.Close()
	return 0, nil, errors.New("no free redis database (1..15 are all claimed)")
}

// startBinaries starts one emulator per binary, each with the function's environment, and
// returns an Env per emulator whose Invoke posts to it.
func startBinaries(ctx context.Context, o options, env map[string]string) ([]herd.Env, func(), error) {
	for _, p := range []string{o.bootstrap, o.rie} {
		if _, err := os.Stat(p); err != nil {
			return nil, nil, fmt.Errorf("%s is missing (`make bench-drop` builds and installs it): %w", p, err)
		}
	}
	var cmds []*exec.Cmd
	stopAll := func() {
		for _, c := range cmds {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			_ = c.Wait()
		}
	}
	vars := os.Environ()
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	vars = append(vars, "AWS_LAMBDA_FUNCTION_NAME=lastunit-reserve", "AWS_LAMBDA_FUNCTION_TIMEOUT=30")
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	envs := make([]herd.Env, o.binaries)
	addrs := make([]string, o.binaries)
	ports, err := freePorts(2 * o.binaries)
	if err != nil {
		return nil, nil, err
	}
	for i := range o.binaries {
		addr, api := ports[2*i], ports[2*i+1]
		cmd := exec.Command(o.rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", api, o.bootstrap)
		cmd.Env = vars
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			stopAll()
			return nil, nil, fmt.Errorf("start emulator %d: %w", i, err)
		}
		cmds = append(cmds, cmd)
		addrs[i] = addr
		url := "http://" + addr + "/2015-03-31/functions/function/invocations"
		envs[i] = herd.Env{Close: func() {}, Invoke: func(ctx context.Context, payload []byte) ([]byte, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				// The emulator's own answer (502 for a runtime that exited): API Gateway would
				// turn it into a bare 500.
				return []byte(fmt.Sprintf(`{"statusCode":%d}`, resp.StatusCode)), nil
			}
			return body, nil
		}}
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(addrs))
	for _, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(30 * time.Second)
			for {
				c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
				if err == nil {
					c.Close()
					return
				}
				if time.Now().After(deadline) {
					errc <- fmt.Errorf("the emulator does not listen on %s", a)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		stopAll()
		return nil, nil, err
	}
	return envs, stopAll, nil
}

// freePorts returns n distinct loopback addresses free right now (all held open together while
// they are chosen, so none is handed out twice).
func freePorts(n int) ([]string, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	out := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}
