package store_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lastunit/shared/draw"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// BenchmarkDrawMillion measures one draw of DRAW_BENCH_ENTRIES entries (default 1,000,000):
// the digest fixed at the close and every entry ranked, set-based in Postgres, as the sweep runs
// it in one invocation. It reports seconds per million entries and the Go heap the calling
// process grew by (the work is Postgres's; the function only waits):
//
//	go test -run '^$' -bench DrawMillion -benchtime 1x -timeout 30m ./shared/store/
func BenchmarkDrawMillion(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("DRAW_BENCH_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("DRAW_BENCH_ENTRIES=%q: want a positive integer", v)
		}
	}
	ctx := context.Background()
	pool, _ := testenv.Postgres(b)
	st := store.New(pool)
	opens := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	closes := opens.Add(time.Hour)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		id := fmt.Sprintf("million-%d", i)
		drawProduct(b, st, id, opens, closes, closes)
		// The entries are built in a function of their own, so that they are garbage before the
		// measured step (which must not hold a million entries in memory).
		func() {
			rows := make([][]any, n)
			for j := range rows {
				user := "shopper-" + strconv.Itoa(j)
				e, _ := hex.DecodeString(draw.Entrant(id, user))
				rows[j] = []any{id, user, e, []string{"default"}, int32(1), opens, opens}
			}
			if _, err := pool.CopyFrom(ctx, pgx.Identifier{"draw_entries"}, []string{"product_id", "user_id", "entrant", "variant_ids", "quantity", "created_at", "updated_at"}, pgx.CopyFromRows(rows)); err != nil {
				b.Fatal(err)
			}
		}()
		if _, err := pool.Exec(ctx, `ANALYZE draw_entries`); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		start := time.Now()
		if ran, err := st.RankDraw(ctx, id, closes); err != nil || !ran {
			b.Fatalf("RankDraw = %v, %v", ran, err)
		}
		total += time.Since(start)
		b.StopTimer()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "MiB-allocated")
		// The record of a million entries must verify too (and shows what publishing it costs).
		rs := time.Now()
		rec, err := st.DrawRecord(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if err := draw.Verify(rec); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(rs).Seconds()*1e6/float64(n), "s-record+verify/M")
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N)*1e6/float64(n), "s/M-entries")
}
