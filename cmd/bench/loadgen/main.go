// Command loadgen measures POST /reservations through a running local runner (`make bench`).
//
// For each concurrency it runs a closed loop of reserves (one unit each, many distinct users,
// a product with stock far beyond the run) for a fixed duration over one shared HTTP client and
// records every latency; then, against the same Postgres database, a closed loop of single-row
// INSERTs (autocommit, one statement each) into a scratch table shaped like reservations: the
// insert ceiling that a reserve, which does one such insert, cannot beat. Last comes a burst:
// many shoppers released together by a barrier against a product with a few units.
//
// It prints one markdown table and a burst line. It exits 1 when a request fails (a transport
// error, an unexpected status, a burst that sold a different number of units than it had) and
// 2 on bad flags; performance targets are reported, never asserted.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// Options are the command line flags.
type Options struct {
	URL             string        // base URL of the runner
	DatabaseURL     string        // the runner's database, for the insert ceiling
	Duration        time.Duration // measured time per concurrency and per loop
	Warmup          time.Duration // unmeasured time before each measured reserve loop
	Conc            []int         // concurrencies to measure
	Users           int           // distinct shoppers whose tokens are minted up front
	Burst           int           // shoppers in the burst
	BurstStock      int64         // units the burst competes for
	CeilingMaxConns int           // cap on the insert ceiling's pool (Postgres has max_connections)
	CeilingIndexes  bool          // give the ceiling's table the secondary indexes of reservations
	Timeout         time.Duration // per HTTP request
	SkipCeiling     bool          // measure reserves only
	SkipBurst       bool          // skip the burst
	Variants        int           // sizes of the variants pair's product (0 skips the pair)
	SoldOut         bool          // after each reserve loop, a loop of sold-out answers (409 out_of_stock)
	RedisURL        string        // the runner's Redis: an EVALSHA ceiling beside the sold-out loop ("" skips it)
	Result          bool          // print one machine-readable RESULT line per concurrency (cmd/bench/compare.sh)
	Stats           bool          // per reserve and per sold-out answer: statements, rows, buffers, trigger calls, CPU
	RunnerPID       int           // the runner's process, for its CPU time (-stats)
}

func main() {
	opt, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opt, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: FAIL:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (Options, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var o Options
	var conc string
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:18080", "base URL of the local runner")
	fs.StringVar(&o.DatabaseURL, "db", os.Getenv("DATABASE_URL"), "Postgres URL for the insert ceiling (the runner's database; default $DATABASE_URL)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time per concurrency, for reserves and for the insert ceiling each")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before each measured reserve loop")
	fs.StringVar(&conc, "conc", "50,200", "comma-separated concurrencies")
	fs.IntVar(&o.Users, "users", 1000, "distinct shoppers (tokens minted up front, used round robin)")
	fs.IntVar(&o.Burst, "burst", 1000, "shoppers in the burst (0 skips it)")
	fs.Int64Var(&o.BurstStock, "burst-stock", 50, "units the burst competes for")
	fs.IntVar(&o.CeilingMaxConns, "ceiling-max-conns", 32, "most Postgres connections the insert ceiling opens (goroutines = concurrency)")
	fs.BoolVar(&o.CeilingIndexes, "ceiling-indexes", false, "give the ceiling's table the three secondary indexes of reservations (default: primary key only)")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "timeout of one HTTP request")
	fs.BoolVar(&o.SkipCeiling, "skip-ceiling", false, "do not measure the insert ceiling")
	fs.BoolVar(&o.SkipBurst, "skip-burst", false, "do not run the burst")
	fs.BoolVar(&o.SoldOut, "soldout", false, "after each reserve loop, measure sold-out answers: shoppers reserving a product whose last unit is held (409 out_of_stock counts as success)")
	fs.StringVar(&o.RedisURL, "redis", "", "Redis URL for the EVALSHA ceiling beside the sold-out loop: a one-HGET script from a go-redis client at the same concurrency (\"\" skips it)")
	fs.BoolVar(&o.Result, "result", false, "also print one machine-readable line per concurrency: RESULT key=value ...")
	fs.BoolVar(&o.Stats, "stats", false, "around the reserve and sold-out loops, read the database's statistics and the CPU time of the runner and of Postgres's backends, and print them per operation (adds 11 s of waiting before and after each loop)")
	fs.IntVar(&o.RunnerPID, "runner-pid", 0, "the runner's process id, for its CPU time with -stats (0: Postgres only)")
	fs.IntVar(&o.Variants, "variants", 12, "after each concurrency, reserve a product in this many sizes and a one-variant product in one interleaved loop (0 skips it)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, f := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-conc: %q is not a positive integer", f)
		}
		o.Conc = append(o.Conc, n)
	}
	switch {
	case o.Duration <= 0 || o.Warmup < 0:
		return o, errors.New("-duration must be positive and -warmup not negative")
	case o.Users < 1:
		return o, errors.New("-users must be at least 1")
	case o.Variants < 0 || o.Variants > 100:
		return o, errors.New("-variants must be from 0 to 100")
	case o.Burst < 0 || o.BurstStock < 0 || o.CeilingMaxConns < 1:
		return o, errors.New("-burst and -burst-stock must not be negative, -ceiling-max-conns must be positive")
	case !o.SkipCeiling && o.DatabaseURL == "":
		return o, errors.New("-db (or DATABASE_URL) is needed for the insert ceiling")
	}
	if o.Burst == 0 {
		o.SkipBurst = true
	}
	o.URL = strings.TrimSuffix(o.URL, "/")
	return o, nil
}

// Row is one line of the result table.
type Row struct {
	Conc    int
	Reserve Loop
	Ceiling Loop // zero when the ceiling was skipped
	// Stats and SoldOutStats are the per-operation breakdowns of -stats (nil without).
	Stats, SoldOutStats *Breakdown
	// SoldOut is the sold-out loop and EvalSHA the Redis ceiling beside it (zero when skipped).
	SoldOut, EvalSHA Loop
	// One and Sizes are the variants pair: one interleaved loop over a one-variant product and
	// a product in Options.Variants sizes (zero when skipped).
	One, Sizes Loop
}

// Loop is the outcome of one closed loop.
type Loop struct {
	OK       int             // successful operations in the measured window
	All      int             // operations started, warm-up included, answered or not
	Failed   int             // operations that did not succeed
	Statuses map[string]int  // failures by HTTP status or error text
	Sample   string          // one failure, as an example
	Elapsed  time.Duration   // measured window
	Lat      []time.Duration // latency of every measured operation, sorted
	Conns    int             // Postgres connections (ceiling only)
}

// PerSec is the rate of successful operations.
func (l Loop) PerSec() float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return float64(l.OK) / l.Elapsed.Seconds()
}

// Mean returns the mean latency in milliseconds.
func (l Loop) Mean() float64 {
	if len(l.Lat) == 0 {
		return math.NaN()
	}
	var sum time.Duration
	for _, d := range l.Lat {
		sum += d
	}
	return float64(sum.Microseconds()) / 1000 / float64(len(l.Lat))
}

// Pct returns the p-th percentile latency (0 < p <= 1) in milliseconds, nearest rank.
func (l Loop) Pct(p float64) float64 {
	if len(l.Lat) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p*float64(len(l.Lat)))) - 1
	i = max(0, min(i, len(l.Lat)-1))
	return float64(l.Lat[i].Microseconds()) / 1000
}

// BurstResult is the outcome of the burst.
type BurstResult struct {
	N          int             // shoppers, one unit each
	Stock      int64           // units they compete for
	Created    int             // 201 answers
	OutOfStock int             // 409 out_of_stock answers
	Other      map[string]int  // any other answer, by status and code
	Sample     string          // one other answer, as an example
	Wall       time.Duration   // barrier release to last answer
	Lat        []time.Duration // latency of every request, sorted
	Available  int64           // the product's available units afterwards
}

func run(ctx context.Context, o Options, out io.Writer) error {
	maxConc := slices.Max(o.Conc)
	hc := &http.Client{
		Timeout: o.Timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: max(1024, maxConc),
			IdleConnTimeout:     2 * time.Minute,
			DisableCompression:  true,
		},
	}
	c := &client{hc: hc, base: o.URL}
	runID := newRunID()
	startLoad := loadAvg()
	logf("run %s against %s: concurrencies %v, %s each (+%s warm-up), insert ceiling %v, burst %d for %d units",
		runID, o.URL, o.Conc, o.Duration, o.Warmup, !o.SkipCeiling, o.Burst, o.BurstStock)

	admin, err := c.token(ctx, "bench-admin-"+runID, []string{"admin"})
	if err != nil {
		return fmt.Errorf("mint admin token: %w", err)
	}
	tokens, err := c.tokens(ctx, "bench-"+runID+"-u", max(o.Users, o.Burst))
	if err != nil {
		return fmt.Errorf("mint shopper tokens: %w", err)
	}
	logf("minted %d shopper tokens", len(tokens))

	var pool *pgxpool.Pool
	if !o.SkipCeiling {
		if pool, err = openCeiling(ctx, o.DatabaseURL, o.CeilingMaxConns, o.CeilingIndexes); err != nil {
			return err
		}
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := pool.Exec(dctx, `DROP TABLE IF EXISTS bench_inserts`); err != nil {
				logf("drop bench_inserts: %v", err)
			}
			pool.Close()
		}()
	}

	var rows []Row
	var failures []string
	for _, n := range o.Conc {
		pid := fmt.Sprintf("bench-%s-c%d", runID, n)
		// Stock far beyond what any run can take, and a per-user limit that never binds.
		if err := c.putProduct(ctx, admin, pid, 100_000_000, 1_000_000_000); err != nil {
			return fmt.Errorf("create product %s: %w", pid, err)
		}
		logf("c=%d: reserving %s for %s (+%s warm-up)", n, pid, o.Duration, o.Warmup)
		body := []byte(fmt.Sprintf(`{"product_id":%q,"quantity":1}`, pid))
		var next atomic.Uint64
		var res Loop
		bd, err := measured(ctx, o, func() int {
			res = closedLoop(ctx, n, o.Warmup, o.Duration, func(ctx context.Context) (string, error) {
				tok := tokens[int(next.Add(1)%uint64(len(tokens)))]
				return c.reserve(ctx, tok, body)
			})
			return res.All
		})
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		row := Row{Conc: n, Reserve: res, Stats: bd}
		logf("c=%d: %d reserves, %.0f/s, p50 %.2f ms, p99 %.2f ms, %d non-201", n, res.OK, res.PerSec(), res.Pct(0.50), res.Pct(0.99), res.Failed)
		if res.Failed > 0 {
			failures = append(failures, fmt.Sprintf("c=%d: %d reserves failed %v, e.g. %s", n, res.Failed, res.Statuses, res.Sample))
		}
		if pool != nil {
			logf("c=%d: single-row INSERT ceiling for %s", n, o.Duration)
			row.Ceiling = ceiling(ctx, pool, n, o.Duration)
			if err := ctx.Err(); err != nil {
				return err
			}
			logf("c=%d: %d inserts over %d conns, %.0f/s, p50 %.2f ms, p99 %.2f ms", n, row.Ceiling.OK, row.Ceiling.Conns, row.Ceiling.PerSec(), row.Ceiling.Pct(0.50), row.Ceiling.Pct(0.99))
			if row.Ceiling.Failed > 0 {
				failures = append(failures, fmt.Sprintf("c=%d: %d inserts failed %v, e.g. %s", n, row.Ceiling.Failed, row.Ceiling.Statuses, row.Ceiling.Sample))
			}
		}
		if o.SoldOut {
			if err := soldOut(ctx, o, c, admin, tokens, runID, &row); err != nil {
				return err
			}
			if row.SoldOut.Failed > 0 {
				failures = append(failures, fmt.Sprintf("c=%d sold out: %d answers other than 409 out_of_stock %v, e.g. %s", n, row.SoldOut.Failed, row.SoldOut.Statuses, row.SoldOut.Sample))
			}
		}
		if o.Variants > 0 {
			if err := variantsPair(ctx, o, c, admin, tokens, runID, &row); err != nil {
				return err
			}
			for _, l := range []Loop{row.One, row.Sizes} {
				if l.Failed > 0 {
					failures = append(failures, fmt.Sprintf("c=%d variants pair: %d reserves failed %v, e.g. %s", n, l.Failed, l.Statuses, l.Sample))
				}
			}
		}
		rows = append(rows, row)
	}

	var burst *BurstResult
	if !o.SkipBurst {
		pid := "bench-" + runID + "-burst"
		if err := c.putProduct(ctx, admin, pid, o.BurstStock, 1); err != nil {
			return fmt.Errorf("create product %s: %w", pid, err)
		}
		logf("burst: %d shoppers at once for %d units of %s", o.Burst, o.BurstStock, pid)
		b, err := runBurst(ctx, o, c, tokens[:o.Burst], pid)
		if err != nil {
			return err
		}
		burst = &b
		want409 := int64(b.N) - b.Stock
		if b.Stock > int64(b.N) {
			want409 = 0
		}
		if int64(b.Created) != min(b.Stock, int64(b.N)) || int64(b.OutOfStock) != want409 || len(b.Other) > 0 || b.Available != b.Stock-int64(b.Created) {
			failures = append(failures, fmt.Sprintf("burst: want %d × 201 and %d × 409 out_of_stock, got %d × 201, %d × 409 out_of_stock, others %v (e.g. %s), available afterwards %d",
				min(b.Stock, int64(b.N)), want409, b.Created, b.OutOfStock, b.Other, b.Sample, b.Available))
		}
	}

	report(out, o, rows, burst, startLoad)
	for _, r := range rows {
		if r.Stats != nil {
			r.Stats.print(out, fmt.Sprintf("reserve at c=%d", r.Conc))
		}
		if r.SoldOutStats != nil {
			r.SoldOutStats.print(out, fmt.Sprintf("sold-out answer at c=%d", r.Conc))
		}
	}
	if o.Result {
		for _, r := range rows {
			stats := ""
			if r.Stats != nil {
				stats = fmt.Sprintf(" runner_cpu_us=%.0f pg_cpu_us=%.0f xacts=%.2f bufs=%.1f", r.Stats.RunnerCPU, r.Stats.PGCPU,
					r.Stats.DB["transactions (commits + rollbacks)"], r.Stats.DB["buffer accesses (hit + read)"])
			}
			if r.SoldOutStats != nil {
				stats += fmt.Sprintf(" soldout_runner_cpu_us=%.0f", r.SoldOutStats.RunnerCPU)
			}
			fmt.Fprintf(out, "RESULT conc=%d reserve_rps=%.0f p50_ms=%.2f p99_ms=%.2f reserves=%d ceiling_rps=%.0f soldout_rps=%.0f soldout_p99_ms=%.2f evalsha_rps=%.0f load=%s",
				r.Conc, r.Reserve.PerSec(), r.Reserve.Pct(0.5), r.Reserve.Pct(0.99), r.Reserve.OK, r.Ceiling.PerSec(),
				r.SoldOut.PerSec(), r.SoldOut.Pct(0.99), r.EvalSHA.PerSec(), strings.ReplaceAll(loadAvg(), " ", "/"))
			fmt.Fprintln(out, stats)
		}
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}

// report prints the table, the burst line and how the measurements compare with the targets.
func report(w io.Writer, o Options, rows []Row, b *BurstResult, startLoad string) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| concurrency | reserve req/s | p50 ms | p99 ms | insert ceiling rows/s | reserve/ceiling % |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		ceil, pct := "-", "-"
		if r.Ceiling.Elapsed > 0 {
			ceil = fmt.Sprintf("%.0f", r.Ceiling.PerSec())
			if r.Ceiling.PerSec() > 0 {
				pct = fmt.Sprintf("%.0f %%", 100*r.Reserve.PerSec()/r.Ceiling.PerSec())
			}
		}
		fmt.Fprintf(w, "| %d | %.0f | %.2f | %.2f | %s | %s |\n", r.Conc, r.Reserve.PerSec(), r.Reserve.Pct(0.50), r.Reserve.Pct(0.99), ceil, pct)
	}
	fmt.Fprintln(w)
	if b != nil {
		fmt.Fprintf(w, "burst: %d shoppers at once for %d units: %d × 201, %d × 409 out_of_stock, %d other, in %.1f ms (p50 %.1f ms, max %.1f ms; new connections), available afterwards %d\n",
			b.N, b.Stock, b.Created, b.OutOfStock, sum(b.Other), float64(b.Wall.Microseconds())/1000,
			Loop{Lat: b.Lat}.Pct(0.5), Loop{Lat: b.Lat}.Pct(1), b.Available)
	}
	if startLoad != "" {
		// Everything shares the machine's cores: other work running meanwhile lowers both columns.
		fmt.Fprintf(w, "load average (1, 5, 15 min) at the start: %s, at the end: %s\n", startLoad, loadAvg())
	}
	if !o.SkipCeiling {
		shape := "primary key only"
		if o.CeilingIndexes {
			shape = "primary key and the three secondary indexes of reservations"
		}
		fmt.Fprintf(w, "insert ceiling: one-row INSERT per statement, autocommit, into bench_inserts (%s), goroutines = concurrency\n", shape)
	}
	for _, r := range rows {
		fmt.Fprintf(w, "c=%d: %d reserves in %.1f s, %d non-201", r.Conc, r.Reserve.OK, r.Reserve.Elapsed.Seconds(), r.Reserve.Failed)
		if r.Ceiling.Elapsed > 0 {
			fmt.Fprintf(w, "; ceiling %d inserts over %d Postgres conns, p50 %.2f ms, p99 %.2f ms", r.Ceiling.OK, r.Ceiling.Conns, r.Ceiling.Pct(0.5), r.Ceiling.Pct(0.99))
		}
		fmt.Fprintln(w)
	}
	// Targets (reported, not asserted).
	for _, r := range rows {
		if r.Conc != 200 {
			continue
		}
		fmt.Fprintf(w, "target p99 at c=200 < 50 ms: %s (%.2f ms)\n", verdict(r.Reserve.Pct(0.99) < 50), r.Reserve.Pct(0.99))
	}
	for _, r := range rows {
		if r.Ceiling.PerSec() > 0 {
			ratio := r.Reserve.PerSec() / r.Ceiling.PerSec()
			fmt.Fprintf(w, "target reserve >= 70 %% of insert ceiling at c=%d: %s (%.0f %%)\n", r.Conc, verdict(ratio >= 0.7), 100*ratio)
		}
	}
	for _, r := range rows {
		if r.SoldOut.OK > 0 {
			fmt.Fprintf(w, "sold out at c=%d: %.0f answers/s (409 out_of_stock), p50 %.2f ms, p99 %.2f ms", r.Conc, r.SoldOut.PerSec(), r.SoldOut.Pct(0.5), r.SoldOut.Pct(0.99))
			if r.EvalSHA.PerSec() > 0 {
				fmt.Fprintf(w, "; Redis EVALSHA ceiling %.0f/s; sold out / ceiling %.2f (target >= 0.30)", r.EvalSHA.PerSec(), r.SoldOut.PerSec()/r.EvalSHA.PerSec())
			}
			fmt.Fprintln(w)
		}
	}
	for _, r := range rows {
		if r.One.OK > 0 && r.Sizes.OK > 0 {
			d := 100 * (r.Sizes.Mean() - r.One.Mean()) / r.One.Mean()
			fmt.Fprintf(w, "variants pair at c=%d (one loop, alternating): one variant p50 %.2f ms p99 %.2f ms mean %.2f ms (%d); %d sizes p50 %.2f ms p99 %.2f ms mean %.2f ms (%d); target mean within 10 %%: %s (%+.1f %%)\n",
				r.Conc, r.One.Pct(0.5), r.One.Pct(0.99), r.One.Mean(), r.One.OK, o.Variants, r.Sizes.Pct(0.5), r.Sizes.Pct(0.99), r.Sizes.Mean(), r.Sizes.OK,
				verdict(d <= 10), d)
		}
	}
	if b != nil {
		fmt.Fprintf(w, "target burst well under 1 s: %s (%.1f ms)\n", verdict(b.Wall < time.Second), float64(b.Wall.Microseconds())/1000)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// closedLoop runs conc workers that call op back to back: first for warmup (not recorded),
// then for dur. op returns "" on success, else a failure class and an example. Operations
// started before the end finish and count; the window ends with the last of them.
func closedLoop(ctx context.Context, conc int, warmup, dur time.Duration, op func(context.Context) (string, error)) Loop {
	type worker struct {
		ok, failed int
		all        int
		lat        []time.Duration
		classes    map[string]int
		sample     string
		last       time.Time
	}
	ws := make([]worker, conc)
	start := time.Now()
	from, until := start.Add(warmup), start.Add(warmup+dur)
	var wg sync.WaitGroup
	for i := range ws {
		w := &ws[i]
		w.lat = make([]time.Duration, 0, 4096)
		w.classes = map[string]int{}
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(until) {
					return
				}
				class, err := op(ctx)
				t1 := time.Now()
				w.all++
				if t0.Before(from) {
					continue
				}
				w.last = t1
				if class == "" {
					w.ok++
					w.lat = append(w.lat, t1.Sub(t0))
					continue
				}
				w.failed++
				w.classes[class]++
				if w.sample == "" && err != nil {
					w.sample = err.Error()
				}
			}
		})
	}
	wg.Wait()
	var l Loop
	l.Statuses = map[string]int{}
	end := until
	for i := range ws {
		w := &ws[i]
		l.OK += w.ok
		l.All += w.all
		l.Failed += w.failed
		l.Lat = append(l.Lat, w.lat...)
		for k, v := range w.classes {
			l.Statuses[k] += v
		}
		if l.Sample == "" {
			l.Sample = w.sample
		}
		if w.last.After(end) {
			end = w.last
		}
	}
	l.Elapsed = end.Sub(from)
	slices.Sort(l.Lat)
	return l
}

// openCeiling connects the insert ceiling's pool and creates its scratch table, with the
// secondary indexes of reservations when indexes is set.
func openCeiling(ctx context.Context, url string, maxConns int, indexes bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse -db: %w", err)
	}
	cfg.MaxConns = int32(maxConns)
	// Through PgBouncer (transaction pooling) as the runner is: no named prepared statements.
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	// Shaped like reservations: a random text key and the same columns, no foreign key.
	_, err = pool.Exec(ctx, `DROP TABLE IF EXISTS bench_inserts;
		CREATE TABLE bench_inserts (
			id         text PRIMARY KEY,
			product_id text NOT NULL,
			user_id    text NOT NULL,
			quantity   bigint NOT NULL,
			status     text NOT NULL,
			expires_at timestamptz NOT NULL,
			order_id   text,
			created_at timestamptz NOT NULL,
			updated_at timestamptz NOT NULL)`)
	if err == nil && indexes {
		_, err = pool.Exec(ctx, `
			CREATE INDEX ON bench_inserts (expires_at) WHERE status = 'reserved';
			CREATE INDEX ON bench_inserts (product_id) WHERE status IN ('reserved', 'checked_out');
			CREATE INDEX ON bench_inserts (user_id, created_at) WHERE status IN ('reserved', 'checked_out')`)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("create bench_inserts: %w", err)
	}
	return pool, nil
}

// ceiling measures single-row INSERTs (autocommit, one statement, one round trip each) by
// conc goroutines over the pool, which first opens all its connections.
func ceiling(ctx context.Context, pool *pgxpool.Pool, conc int, dur time.Duration) Loop {
	conns := min(conc, int(pool.Config().MaxConns))
	held := make([]*pgxpool.Conn, 0, conns)
	for range conns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			break
		}
		held = append(held, c)
	}
	for _, c := range held {
		c.Release()
	}
	const q = `INSERT INTO bench_inserts (id, product_id, user_id, quantity, status, expires_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, 'reserved', $5, $6, $6)`
	pid := fmt.Sprintf("bench-ceiling-c%d", conc)
	var next atomic.Uint64
	// A short warm-up prepares the statement on every connection.
	l := closedLoop(ctx, conc, 500*time.Millisecond, dur, func(ctx context.Context) (string, error) {
		now := time.Now().UTC()
		user := "u" + strconv.FormatUint(next.Add(1)%1000, 10)
		if _, err := pool.Exec(ctx, q, newID("r_"), pid, user, int64(1), now.Add(time.Hour), now); err != nil {
			return "error", err
		}
		return "", nil
	})
	l.Conns = int(pool.Stat().TotalConns())
	return l
}

// runBurst releases b.N shoppers together (each reserving one unit of pid over a fresh
// connection) and checks what they got.
func runBurst(ctx context.Context, o Options, c *client, tokens []string, pid string) (BurstResult, error) {
	res := BurstResult{N: len(tokens), Stock: o.BurstStock, Other: map[string]int{}}
	bc := &client{base: c.base, hc: &http.Client{
		Timeout: o.Timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: len(tokens),
			DisableCompression:  true,
		},
	}}
	defer bc.hc.CloseIdleConnections()
	body := []byte(fmt.Sprintf(`{"product_id":%q,"quantity":1}`, pid))
	type answer struct {
		class string
		err   error
		lat   time.Duration
		done  time.Time
	}
	answers := make([]answer, len(tokens))
	gate := make(chan struct{})
	var ready, wg sync.WaitGroup
	ready.Add(len(tokens))
	for i, tok := range tokens {
		wg.Go(func() {
			ready.Done()
			<-gate
			t0 := time.Now()
			class, err := bc.reserve(ctx, tok, body)
			t1 := time.Now()
			answers[i] = answer{class: class, err: err, lat: t1.Sub(t0), done: t1}
		})
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	wg.Wait()
	last := start
	for _, a := range answers {
		if a.done.After(last) {
			last = a.done
		}
		res.Lat = append(res.Lat, a.lat)
		switch a.class {
		case "":
			res.Created++
		case "409 out_of_stock":
			res.OutOfStock++
		default:
			res.Other[a.class]++
			if res.Sample == "" && a.err != nil {
				res.Sample = a.err.Error()
			}
		}
	}
	res.Wall = last.Sub(start)
	slices.Sort(res.Lat)
	avail, err := c.available(ctx, pid)
	if err != nil {
		return res, fmt.Errorf("read %s after the burst: %w", pid, err)
	}
	res.Available = avail
	return res, nil
}

// client talks to the runner.
type client struct {
	hc   *http.Client
	base string
}

// do sends one request and returns the status and the body.
func (c *client) do(ctx context.Context, method, path, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, b, nil
}

// reserve posts one reserve and classifies the answer: "" for 201, else "STATUS code" (or
// "transport") with the answer as the error.
func (c *client) reserve(ctx context.Context, token string, body []byte) (string, error) {
	status, b, err := c.do(ctx, http.MethodPost, "/reservations", token, body)
	if err != nil {
		return "transport", err
	}
	if status == http.StatusCreated {
		return "", nil
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return fmt.Sprintf("%d %s", status, e.Error.Code), fmt.Errorf("POST /reservations: %d %s", status, truncate(b))
}

// token mints a dev token through POST /_local/token.
func (c *client) token(ctx context.Context, sub string, groups []string) (string, error) {
	body, _ := json.Marshal(map[string]any{"sub": sub, "groups": groups, "ttl": "2h"})
	status, b, err := c.do(ctx, http.MethodPost, "/_local/token", "", body)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("POST /_local/token: %d %s", status, truncate(b))
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Token == "" {
		return "", fmt.Errorf("POST /_local/token: no token in %s", truncate(b))
	}
	return out.Token, nil
}

// tokens mints n shopper tokens, one distinct user each, a few at a time.
func (c *client) tokens(ctx context.Context, prefix string, n int) ([]string, error) {
	out := make([]string, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				out[i], errs[i] = c.token(ctx, prefix+strconv.Itoa(i), nil)
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// variantsPair reserves a one-variant product and a product in o.Variants sizes (each
// reserve naming the next size) in one closed loop at the row's concurrency, alternating
// between them, so that both see the same load; row.One and row.Sizes get their figures.
func variantsPair(ctx context.Context, o Options, c *client, admin string, tokens []string, runID string, row *Row) error {
	one, sized := fmt.Sprintf("bench-%s-c%d-one", runID, row.Conc), fmt.Sprintf("bench-%s-c%d-sizes", runID, row.Conc)
	if err := c.putProduct(ctx, admin, one, 100_000_000, 1_000_000_000); err != nil {
		return fmt.Errorf("create product %s: %w", one, err)
	}
	sizes := make([]map[string]any, o.Variants)
	bodies := make([][]byte, o.Variants)
	for i := range sizes {
		id := fmt.Sprintf("us-%d", i+1)
		sizes[i] = map[string]any{"id": id, "name": "US " + fmt.Sprint(i+1), "stock": 100_000_000}
		bodies[i] = []byte(fmt.Sprintf(`{"product_id":%q,"variant_id":%q,"quantity":1}`, sized, id))
	}
	body, _ := json.Marshal(map[string]any{"name": "bench " + sized, "price_cents": 100, "currency": "usd", "max_per_user": 1_000_000_000, "variants": sizes})
	if status, b, err := c.do(ctx, http.MethodPut, "/admin/products/"+sized, admin, body); err != nil || status != http.StatusOK {
		return fmt.Errorf("PUT /admin/products/%s: %d %s %v", sized, status, truncate(b), err)
	}
	oneBody := []byte(fmt.Sprintf(`{"product_id":%q,"quantity":1}`, one))
	logf("c=%d: variants pair: %s and %s (%d sizes), alternating, for %s (+%s warm-up)", row.Conc, one, sized, o.Variants, o.Duration, o.Warmup)
	var next atomic.Uint64
	var mu sync.Mutex
	from := time.Now().Add(o.Warmup)
	var lat [2][]time.Duration
	var fails [2]int
	var statuses [2]map[string]int
	statuses[0], statuses[1] = map[string]int{}, map[string]int{}
	var sample string
	closedLoop(ctx, row.Conc, o.Warmup, o.Duration, func(ctx context.Context) (string, error) {
		n := next.Add(1)
		tok := tokens[int(n/2%uint64(len(tokens)))]
		k, b := int(n%2), oneBody
		if k == 1 {
			b = bodies[int(n/2%uint64(len(bodies)))]
		}
		t0 := time.Now()
		class, err := c.reserve(ctx, tok, b)
		d := time.Since(t0)
		if t0.Before(from) {
			return class, err
		}
		mu.Lock()
		if class == "" {
			lat[k] = append(lat[k], d)
		} else {
			fails[k]++
			statuses[k][class]++
			if sample == "" && err != nil {
				sample = err.Error()
			}
		}
		mu.Unlock()
		return class, err
	})
	for k, l := range []*Loop{&row.One, &row.Sizes} {
		slices.Sort(lat[k])
		*l = Loop{OK: len(lat[k]), Failed: fails[k], Statuses: statuses[k], Sample: sample, Lat: lat[k], Elapsed: o.Duration}
	}
	logf("c=%d: variants pair: one variant mean %.2f ms (%d), %d sizes mean %.2f ms (%d)", row.Conc, row.One.Mean(), row.One.OK, o.Variants, row.Sizes.Mean(), row.Sizes.OK)
	return ctx.Err()
}

// soldOut measures the answer every shopper of a drop gets after the last unit: a product of
// one unit, held by the first shopper, then a closed loop of distinct shoppers reserving it
// without an Idempotency-Key (409 out_of_stock is the expected answer). With o.RedisURL, the
// EVALSHA ceiling follows at the same concurrency: a one-HGET script on a hash of the runner's
// Redis DB from a go-redis client with its default pool, the most a Redis round trip of a
// script can do here.
func soldOut(ctx context.Context, o Options, c *client, admin string, tokens []string, runID string, row *Row) error {
	pid := fmt.Sprintf("bench-%s-c%d-gone", runID, row.Conc)
	if err := c.putProduct(ctx, admin, pid, 1, 1); err != nil {
		return fmt.Errorf("create product %s: %w", pid, err)
	}
	body := []byte(fmt.Sprintf(`{"product_id":%q,"quantity":1}`, pid))
	if class, err := c.reserve(ctx, tokens[0], body); class != "" {
		return fmt.Errorf("take the last unit of %s: %w", pid, err)
	}
	logf("c=%d: sold-out answers from %s for %s (+%s warm-up)", row.Conc, pid, o.Duration, o.Warmup)
	var next atomic.Uint64
	bd, err := measured(ctx, o, func() int {
		row.SoldOut = closedLoop(ctx, row.Conc, o.Warmup, o.Duration, func(ctx context.Context) (string, error) {
			tok := tokens[1+int(next.Add(1)%uint64(len(tokens)-1))]
			class, err := c.reserve(ctx, tok, body)
			if class == "409 out_of_stock" {
				return "", nil
			}
			if class == "" {
				return "201", errors.New("a sold-out product granted a hold")
			}
			return class, err
		})
		return row.SoldOut.All
	})
	if err != nil {
		return err
	}
	row.SoldOutStats = bd
	logf("c=%d: sold out: %.0f answers/s, p99 %.2f ms, %d other", row.Conc, row.SoldOut.PerSec(), row.SoldOut.Pct(0.99), row.SoldOut.Failed)
	if o.RedisURL == "" {
		return ctx.Err()
	}
	ropt, err := redis.ParseURL(o.RedisURL)
	if err != nil {
		return fmt.Errorf("-redis: %w", err)
	}
	rc := redis.NewClient(ropt)
	defer rc.Close()
	key := "bench:" + runID + ":evalsha"
	if err := rc.HSet(ctx, key, "avail", 0).Err(); err != nil {
		return fmt.Errorf("evalsha ceiling: %w", err)
	}
	defer rc.Del(context.WithoutCancel(ctx), key)
	script := redis.NewScript(`return redis.call('HGET', KEYS[1], ARGV[1])`)
	if err := script.Load(ctx, rc).Err(); err != nil {
		return fmt.Errorf("evalsha ceiling: %w", err)
	}
	row.EvalSHA = closedLoop(ctx, row.Conc, o.Warmup, o.Duration, func(ctx context.Context) (string, error) {
		if err := script.EvalSha(ctx, rc, []string{key}, "avail").Err(); err != nil {
			return "error", err
		}
		return "", nil
	})
	logf("c=%d: EVALSHA ceiling %.0f/s", row.Conc, row.EvalSHA.PerSec())
	return ctx.Err()
}

// measured runs loop, which returns how many operations it made; with o.Stats it returns the
// breakdown per operation of the statistics read before and after it.
func measured(ctx context.Context, o Options, loop func() int) (*Breakdown, error) {
	if !o.Stats {
		loop()
		return nil, ctx.Err()
	}
	cfg, err := pgx.ParseConfig(o.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("-stats: %w", err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("-stats: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sleep := func() {
		select {
		case <-ctx.Done():
		case <-time.After(statsWait):
		}
	}
	sleep()
	before, err := snapshot(ctx, conn, o.RunnerPID)
	if err != nil {
		return nil, fmt.Errorf("-stats: %w", err)
	}
	ops := loop()
	sleep()
	after, err := snapshot(ctx, conn, o.RunnerPID)
	if err != nil {
		return nil, fmt.Errorf("-stats: %w", err)
	}
	bd := breakdown(before, after, ops)
	return &bd, ctx.Err()
}

// putProduct creates a product through the admin route.
func (c *client) putProduct(ctx context.Context, admin, id string, stock, maxPerUser int64) error {
	body, _ := json.Marshal(map[string]any{"name": "bench " + id, "price_cents": 100, "currency": "usd", "stock": stock, "max_per_user": maxPerUser})
	status, b, err := c.do(ctx, http.MethodPut, "/admin/products/"+id, admin, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("PUT /admin/products/%s: %d %s", id, status, truncate(b))
	}
	return nil
}

// available reads a product's available units.
func (c *client) available(ctx context.Context, id string) (int64, error) {
	status, b, err := c.do(ctx, http.MethodGet, "/products/"+id, "", nil)
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("GET /products/%s: %d %s", id, status, truncate(b))
	}
	var p struct {
		Available int64 `json:"available"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return 0, fmt.Errorf("GET /products/%s: %w", id, err)
	}
	return p.Available, nil
}

func truncate(b []byte) string {
	const n = 300
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns prefix and 24 random base32 characters, like the server's ids.
func newID(prefix string) string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	return prefix + strings.ToLower(idEncoding.EncodeToString(b))
}

// newRunID is a short id, unique per run, that fits a product id.
func newRunID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return strconv.FormatInt(time.Now().Unix()%100000, 36) + strings.ToLower(idEncoding.EncodeToString(b))
}

// loadAvg returns the machine's load averages from /proc/loadavg, "" where there is none.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s loadgen: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
