package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on Linux).
const clockTicks = 100

// Snapshot is what a stats run reads before and after the reserve loop: CPU time of the
// runner and of the database's Postgres backends, and the database's cumulative statistics.
// Counts per reserve are independent of the machine's load; CPU time per reserve much less so
// than a rate, since it does not count the time a process waits for a core.
type Snapshot struct {
	RunnerCPU float64            // seconds of CPU the runner used so far
	PGCPU     map[int]float64    // seconds of CPU per backend of the database
	DB        map[string]float64 // pg_stat_database counters of the database
	Funcs     map[string][2]float64
	Tables    map[string][]float64 // per table: inserted, updated, HOT-updated, index scans, blocks hit
	Indexes   map[string]float64   // blocks hit per index
}

var tableCols = []string{"tuples inserted", "tuples updated", "HOT updates", "index scans", "buffer hits (heap + index)"}

// cpuSeconds reads a process's user + system CPU time from /proc.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clockTicks, nil
}

// snapshot reads a Snapshot. Postgres 15 backends report their statistics at most once a
// second while busy and after ten seconds idle: the caller waits for that before reading.
func snapshot(ctx context.Context, conn *pgx.Conn, runnerPID int) (Snapshot, error) {
	s := Snapshot{PGCPU: map[int]float64{}, DB: map[string]float64{}, Funcs: map[string][2]float64{}, Tables: map[string][]float64{}, Indexes: map[string]float64{}}
	var err error
	if runnerPID > 0 {
		if s.RunnerCPU, err = cpuSeconds(runnerPID); err != nil {
			return s, err
		}
	}
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
	if err != nil {
		return s, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return s, err
	}
	for _, p := range pids {
		if c, err := cpuSeconds(int(p)); err == nil {
			s.PGCPU[int(p)] = c
		}
	}
	if _, err := conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
		return s, err
	}
	var xc, xr, ret, fet, ins, upd, hit, rd float64
	if err := conn.QueryRow(ctx, `SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, blks_hit, blks_read
		FROM pg_stat_database WHERE datname = current_database()`).Scan(&xc, &xr, &ret, &fet, &ins, &upd, &hit, &rd); err != nil {
		return s, err
	}
	s.DB = map[string]float64{"transactions (commits + rollbacks)": xc + xr, "rollbacks": xr, "tuples returned": ret, "tuples fetched": fet,
		"tuples inserted": ins, "tuples updated": upd, "buffer accesses (hit + read)": hit + rd}
	rows, err = conn.Query(ctx, `SELECT funcname, calls, self_time FROM pg_stat_user_functions`)
	if err != nil {
		return s, err
	}
	var name string
	var calls, self float64
	if _, err := pgx.ForEachRow(rows, []any{&name, &calls, &self}, func() error { s.Funcs[name] = [2]float64{calls, self}; return nil }); err != nil {
		return s, err
	}
	rows, err = conn.Query(ctx, `SELECT t.relname, t.n_tup_ins, t.n_tup_upd, t.n_tup_hot_upd, coalesce(t.idx_scan, 0),
			coalesce(io.heap_blks_hit, 0) + coalesce(io.idx_blks_hit, 0) + coalesce(io.heap_blks_read, 0) + coalesce(io.idx_blks_read, 0)
		FROM pg_stat_user_tables t JOIN pg_statio_user_tables io USING (relid)`)
	if err != nil {
		return s, err
	}
	var a, b, c, d, e float64
	if _, err := pgx.ForEachRow(rows, []any{&name, &a, &b, &c, &d, &e}, func() error { s.Tables[name] = []float64{a, b, c, d, e}; return nil }); err != nil {
		return s, err
	}
	rows, err = conn.Query(ctx, `SELECT indexrelname, idx_blks_hit + idx_blks_read FROM pg_statio_user_indexes`)
	if err != nil {
		return s, err
	}
	if _, err := pgx.ForEachRow(rows, []any{&name, &a}, func() error { s.Indexes[name] = a; return nil }); err != nil {
		return s, err
	}
	return s, nil
}

// Breakdown is the difference of two snapshots divided by the operations between them.
type Breakdown struct {
	Ops       int
	RunnerCPU float64 // µs per operation
	PGCPU     float64 // µs per operation, summed over the database's backends
	Lines     []string
	DB        map[string]float64
}

func breakdown(before, after Snapshot, ops int) Breakdown {
	n := float64(max(ops, 1))
	bd := Breakdown{Ops: ops, RunnerCPU: 1e6 * (after.RunnerCPU - before.RunnerCPU) / n, DB: map[string]float64{}}
	var pg float64
	for p, c := range after.PGCPU {
		pg += c - before.PGCPU[p] // a backend born meanwhile counts from 0
	}
	bd.PGCPU = 1e6 * pg / n
	add := func(format string, args ...any) { bd.Lines = append(bd.Lines, fmt.Sprintf(format, args...)) }
	keys := func(m map[string]float64) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	for _, k := range keys(after.DB) {
		bd.DB[k] = (after.DB[k] - before.DB[k]) / n
		add("| database | %s | %.2f |", k, bd.DB[k])
	}
	var tables []string
	for k := range after.Tables {
		tables = append(tables, k)
	}
	slices.Sort(tables)
	for _, t := range tables {
		a, b := after.Tables[t], before.Tables[t]
		for i, col := range tableCols {
			old := 0.0
			if b != nil {
				old = b[i]
			}
			if d := (a[i] - old) / n; d >= 0.005 {
				add("| %s | %s | %.2f |", t, col, d)
			}
		}
	}
	for _, k := range keys(after.Indexes) {
		if d := (after.Indexes[k] - before.Indexes[k]) / n; d >= 0.005 {
			add("| index %s | buffer hits | %.2f |", k, d)
		}
	}
	var fs []string
	for k := range after.Funcs {
		fs = append(fs, k)
	}
	slices.Sort(fs)
	for _, f := range fs {
		a, b := after.Funcs[f], before.Funcs[f]
		if d := (a[0] - b[0]) / n; d >= 0.005 {
			add("| function %s | calls; self time µs (load-dependent) | %.2f; %.1f |", f, d, 1000*(a[1]-b[1])/n)
		}
	}
	return bd
}

func (bd Breakdown) print(w io.Writer, what string) {
	fmt.Fprintf(w, "\nper %s (%d of them; counts from pg_stat_*, CPU from /proc):\n\n| where | what | per %s |\n|---|---|---:|\n", what, bd.Ops, what)
	fmt.Fprintf(w, "| runner | CPU µs | %.0f |\n| Postgres backends | CPU µs | %.0f |\n", bd.RunnerCPU, bd.PGCPU)
	for _, l := range bd.Lines {
		fmt.Fprintln(w, l)
	}
}

// statsWait outlasts Postgres's idle-backend statistics flush (10 s in Postgres 15).
const statsWait = 11 * time.Second
