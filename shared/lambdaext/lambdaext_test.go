package lambdaext_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lastunit/shared/lambdaext"
)

var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

// fakeLambda is the Extensions API of one execution environment: it hands the extension an
// INVOKE event per invocation and records when the extension asked for the next one (the
// moment Lambda may freeze the environment).
type fakeLambda struct {
	invokes chan string
	stop    chan struct{}
	mu      sync.Mutex
	nexts   []time.Time
	name    string
}

func (f *fakeLambda) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/2020-01-01/extension/register":
		f.name = r.Header.Get("Lambda-Extension-Name")
		w.Header().Set("Lambda-Extension-Identifier", "ext-1")
		_, _ = w.Write([]byte(`{"functionName":"f","functionVersion":"$LATEST","handler":"bootstrap"}`))
	case r.Method == http.MethodGet && r.URL.Path == "/2020-01-01/extension/event/next":
		if r.Header.Get("Lambda-Extension-Identifier") != "ext-1" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		f.mu.Lock()
		f.nexts = append(f.nexts, time.Now())
		f.mu.Unlock()
		select {
		case id := <-f.invokes:
			_ = json.NewEncoder(w).Encode(map[string]any{"eventType": "INVOKE", "requestId": id, "deadlineMs": time.Now().Add(time.Minute).UnixMilli()})
		case <-r.Context().Done():
		case <-f.stop:
			w.WriteHeader(http.StatusInternalServerError)
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeLambda) nextCalls() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.nexts...)
}

// TestWrapAnswersFirstAndHoldsTheEnvironmentUntilDrained: in Lambda, the response returns
// without waiting for the background work, and the extension asks for its next event (letting
// Lambda freeze the process) only once the work has drained.
func TestWrapAnswersFirstAndHoldsTheEnvironmentUntilDrained(t *testing.T) {
	f := &fakeLambda{invokes: make(chan string, 1), stop: make(chan struct{})}
	srv := httptest.NewServer(f)
	defer srv.Close()
	defer close(f.stop) // the extension's pending long poll ends first
	t.Setenv("AWS_LAMBDA_RUNTIME_API", strings.TrimPrefix(srv.URL, "http://"))

	var drained atomic.Int64 // when the drain finished (unix ns)
	release := make(chan struct{})
	drain := func(ctx context.Context) error {
		<-release // sending the notices: done only when the test says so
		drained.Store(time.Now().UnixNano())
		return nil
	}
	h := lambdaext.Wrap(func(ctx context.Context, in map[string]string) (string, error) { return "ok:" + in["x"], nil }, drain, quiet)
	// Init ends when the extension has asked for its first event.
	deadline := time.Now().Add(2 * time.Second)
	for len(f.nextCalls()) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the extension did not register and wait for events")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if f.name == "" {
		t.Fatal("no extension name")
	}
	for i := range 2 {
		f.invokes <- "req-" + string(rune('1'+i))
		type result struct {
			out []byte
			err error
		}
		done := make(chan result, 1)
		go func() {
			out, err := h.Invoke(context.Background(), []byte(`{"x":"1"}`))
			done <- result{out, err}
		}()
		// The background work cannot finish before it is released: an answer now proves the
		// response did not wait for it.
		select {
		case r := <-done:
			if r.err != nil || string(r.out) != `"ok:1"` {
				t.Fatalf("invoke: %s %v", r.out, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the response waited for the background work")
		}
		if n := len(f.nextCalls()); n != i+1 {
			t.Fatalf("invocation %d: the extension asked for its next event before the work drained", i)
		}
		release <- struct{}{}
		for len(f.nextCalls()) < i+2 {
			time.Sleep(5 * time.Millisecond)
		}
		next := f.nextCalls()[i+1]
		if d := drained.Load(); d == 0 || next.UnixNano() < d {
			t.Fatalf("invocation %d: the extension released the environment before the work drained", i)
		}
	}
}

// TestWrapOutsideLambda: without the Extensions API the handler is just the handler.
func TestWrapOutsideLambda(t *testing.T) {
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "")
	called := false
	h := lambdaext.Wrap(func(context.Context) (string, error) { return "x", nil }, func(context.Context) error { called = true; return nil }, quiet)
	if out, err := h.Invoke(context.Background(), []byte(`{}`)); err != nil || string(out) != `"x"` || called {
		t.Fatalf("%s %v drained=%v", out, err, called)
	}
}

// TestWrapWithoutExtensionsDrainsBeforeAnswering: when registration fails, nothing is left to
// a frozen process: each invocation drains before it answers.
func TestWrapWithoutExtensionsDrainsBeforeAnswering(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	t.Setenv("AWS_LAMBDA_RUNTIME_API", strings.TrimPrefix(srv.URL, "http://"))
	var drained atomic.Bool
	h := lambdaext.Wrap(func(context.Context) (string, error) { return "x", nil }, func(context.Context) error { drained.Store(true); return nil }, quiet)
	if _, err := h.Invoke(context.Background(), []byte(`{}`)); err != nil || !drained.Load() {
		t.Fatalf("err %v, drained %v", err, drained.Load())
	}
}

// TestHandlerStopsBeforeTheDeadline: the handler's context ends DeadlineMargin before the
// invocation's deadline, inside and outside Lambda, so slow dependencies leave it time to
// undo and answer before the environment is killed; without a deadline nothing changes.
func TestHandlerStopsBeforeTheDeadline(t *testing.T) {
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "")
	var got time.Time
	var has bool
	h := lambdaext.Wrap(func(ctx context.Context) (string, error) {
		got, has = ctx.Deadline()
		return "ok", nil
	}, func(context.Context) error { return nil }, quiet)
	deadline := time.Now().Add(10 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if _, err := h.Invoke(ctx, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if !has || !got.Equal(deadline.Add(-lambdaext.DeadlineMargin)) {
		t.Fatalf("the handler's deadline is %v (set %v), want %v", got, has, deadline.Add(-lambdaext.DeadlineMargin))
	}
	if _, err := h.Invoke(context.Background(), []byte(`{}`)); err != nil || has {
		t.Fatalf("without a deadline the handler got one: %v %v", has, err)
	}
}
