// Package lambdaext lets a Lambda function finish background work after its response is sent,
// through an internal extension (the Lambda Extensions API). Lambda freezes the execution
// environment only once the runtime and every registered extension have asked for their next
// event; the extension here asks only after the handler returned and the work drained, so the
// client has its answer at once and the work is never left frozen (or lost with the
// environment). Outside Lambda (no AWS_LAMBDA_RUNTIME_API) the handler runs as it is and
// background work simply goes on.
package lambdaext

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

// DrainFunc finishes background work; it returns once there is none, or when ctx ends.
type DrainFunc func(ctx context.Context) error

// DrainTimeout bounds how long one invocation's background work may hold the environment.
const DrainTimeout = 3 * time.Second

// Wrap returns h (any handler lambda.Start accepts) as a lambda.Handler that, in Lambda,
// registers an internal extension which holds the environment after each invocation until
// drain returns. It must be called before lambda.Start (registration is only open during
// init). If registration fails, each invocation drains before it returns instead (slower
// answers, nothing lost), and says so in the log.
//
// The handler's context ends DeadlineMargin before the invocation's deadline, so a request
// whose dependencies are slow (a thousand cold starts dialling at once) stops waiting while
// there is still time to undo what it took and answer 503, instead of being killed between
// two steps.
func Wrap(h any, drain DrainFunc, log *slog.Logger) lambda.Handler {
	inner := lambda.Handler(margin{lambda.NewHandler(h)})
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" || drain == nil {
		return inner
	}
	w := &wrapped{inner: inner, drain: drain, log: log, finished: make(chan struct{}, 1)}
	ext, err := Register(context.Background(), "http://"+api, "lastunit-after-response")
	if err != nil {
		log.Warn("register after-response extension: draining before each response instead", "err", err.Error())
		w.sync = true
		return w
	}
	go w.run(ext)
	return w
}

// DeadlineMargin is how long before the invocation's deadline the handler's context ends.
const DeadlineMargin = 2 * time.Second

// margin runs its handler with a context that ends DeadlineMargin before the invocation's.
type margin struct{ inner lambda.Handler }

func (m margin) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-DeadlineMargin))
		defer cancel()
	}
	return m.inner.Invoke(ctx, payload)
}

type wrapped struct {
	inner    lambda.Handler
	drain    DrainFunc
	log      *slog.Logger
	sync     bool
	finished chan struct{} // one token per finished invocation
}

// Invoke runs the handler, then either drains (no extension) or hands the drain to the extension.
func (w *wrapped) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := w.inner.Invoke(ctx, payload)
	if w.sync {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DrainTimeout)
		if derr := w.drain(dctx); derr != nil {
			w.log.Warn("drain before response", "err", derr.Error())
		}
		cancel()
		return out, err
	}
	select {
	case w.finished <- struct{}{}:
	default: // the extension lost track; never block an invocation on it
	}
	return out, err
}

// run is the extension's loop: for every INVOKE event, wait for the handler to finish, drain,
// then ask for the next event (which lets Lambda freeze the environment).
func (w *wrapped) run(ext *Extension) {
	for {
		ev, err := ext.Next(context.Background())
		if err != nil {
			w.log.Error("after-response extension: next event", "err", err.Error())
			time.Sleep(time.Second)
			continue
		}
		if ev.EventType != "INVOKE" {
			continue
		}
		<-w.finished
		ctx, cancel := context.WithTimeout(context.Background(), DrainTimeout)
		if err := w.drain(ctx); err != nil {
			w.log.Warn("drain after response", "request_id", ev.RequestID, "err", err.Error())
		}
		cancel()
	}
}

// Extension is a registered internal extension.
type Extension struct {
	base   string
	id     string
	client *http.Client
}

// Event is an Extensions API event.
type Event struct {
	EventType  string `json:"eventType"`
	DeadlineMs int64  `json:"deadlineMs"`
	RequestID  string `json:"requestId"`
}

// Register registers an internal extension for INVOKE events with the Extensions API at
// base (http://$AWS_LAMBDA_RUNTIME_API).
func Register(ctx context.Context, base, name string) (*Extension, error) {
	body, _ := json.Marshal(map[string][]string{"events": {"INVOKE"}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/2020-01-01/extension/register", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Lambda-Extension-Name", name)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{} // Next blocks until the next invocation: no timeout
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("register extension: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	id := resp.Header.Get("Lambda-Extension-Identifier")
	if resp.StatusCode != http.StatusOK || id == "" {
		return nil, fmt.Errorf("register extension: status %d", resp.StatusCode)
	}
	return &Extension{base: base, id: id, client: client}, nil
}

// Next blocks until the next event.
func (e *Extension) Next(ctx context.Context) (Event, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/2020-01-01/extension/event/next", nil)
	if err != nil {
		return Event{}, err
	}
	req.Header.Set("Lambda-Extension-Identifier", e.id)
	resp, err := e.client.Do(req)
	if err != nil {
		return Event{}, fmt.Errorf("next event: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Event{}, fmt.Errorf("next event: status %d", resp.StatusCode)
	}
	var ev Event
	if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil {
		return Event{}, errors.Join(errors.New("decode next event"), err)
	}
	return ev, nil
}
