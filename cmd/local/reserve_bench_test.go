package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"lastunit/shared/handler"
	"lastunit/shared/testenv"
)

// BenchmarkRunnerReserve measures the runner's own work per POST /reservations, in process:
// the request goes straight to the server's ServeHTTP (no socket, no client), so what it
// counts is the runner's routing, token check, API Gateway event, the function's decode,
// shop.Reserve on real Redis and Postgres, the answer's encoding and the log line. Its
// allocs/op and B/op do not depend on the machine's load; ns/op does. "sold-out" is the answer
// every shopper gets after the last unit (Redis only); "reserve" a hold that succeeds (Redis
// and Postgres), for 3000 shoppers with a token each, as make bench-compare's load.
// cpu-µs/op is this process's CPU time per request (the runner's side, its Redis and
// Postgres clients; not the servers'), less load-dependent than ns/op:
//
//	go test -run '^$' -bench RunnerReserve -benchmem -benchtime 5000x -count 3 ./cmd/local/
func BenchmarkRunnerReserve(b *testing.B) {
	for _, soldOut := range []bool{true, false} {
		b.Run(map[bool]string{true: "sold-out", false: "reserve"}[soldOut], func(b *testing.B) {
			env := testenv.NewEnv(b)
			stock, want := int64(1), http.StatusConflict
			if !soldOut {
				stock, want = 10_000_000, http.StatusCreated
			}
			env.Product(b, "p", stock, 1_000_000_000)
			s := newServer(quiet, []byte(testSecret), func(context.Context) error { return nil },
				handler.Reserve(env.Shop, quiet))
			tokens := make([]string, 3000)
			for i := range tokens {
				tokens[i] = bearerB(b, fmt.Sprintf("u%d", i))
			}
			body := `{"product_id":"p","quantity":1}`
			if soldOut {
				if w := serve(s, tokens[0], body); w.Code != http.StatusCreated {
					b.Fatalf("first reserve: %d %s", w.Code, w.Body)
				}
			}
			var n atomic.Int64
			b.SetParallelism(25)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if w := serve(s, tokens[i%int64(len(tokens))], body); w.Code != want {
						b.Fatalf("reserve: %d %s", w.Code, w.Body)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the CPU time (user and system) this process has used so far: the runner's
// side and the benchmark's clients of Redis and Postgres, not the servers'.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func serve(s *server, auth, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/reservations", strings.NewReader(body))
	r.Host = "127.0.0.1:8080"
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", auth)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func bearerB(b *testing.B, sub string) string {
	b.Helper()
	tok, err := mintToken([]byte(testSecret), sub, nil, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return "Bearer " + tok
}
