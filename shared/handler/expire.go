package handler

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/shop"
)

// Expire returns the expire function's handler, invoked by an EventBridge schedule: one
// sweep, logged as one line. An error makes the invocation fail so that it shows in metrics;
// the next sweep repairs whatever this one did not finish.
func Expire(svc *shop.Service, log *slog.Logger) func(context.Context, events.EventBridgeEvent) (shop.SweepReport, error) {
	return scheduled(log, "expire", svc.Sweep)
}

// Janitor returns the janitor function's handler, invoked daily by EventBridge: it cancels
// (refund, restock) the failed jobs older than FAILED_JOB_MAX_AGE, one run at a time.
func Janitor(svc *shop.Service, log *slog.Logger) func(context.Context, events.EventBridgeEvent) (shop.JanitorReport, error) {
	return scheduled(log, "janitor", svc.Janitor)
}

// scheduled adapts a job to an EventBridge-invoked handler that logs one line with its report.
func scheduled[R any](log *slog.Logger, name string, job func(context.Context) (R, error)) func(context.Context, events.EventBridgeEvent) (R, error) {
	return func(ctx context.Context, ev events.EventBridgeEvent) (R, error) {
		start := time.Now()
		rep, err := job(ctx)
		attrs := []any{"job", name, "event_id", ev.ID, "report", rep, "ms", time.Since(start).Milliseconds()}
		if err != nil {
			log.Error(name, append(attrs, "err", err.Error())...)
			return rep, err
		}
		log.Info(name, attrs...)
		return rep, nil
	}
}
