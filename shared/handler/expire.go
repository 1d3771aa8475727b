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
	return func(ctx context.Context, ev events.EventBridgeEvent) (shop.SweepReport, error) {
		start := time.Now()
		rep, err := svc.Sweep(ctx)
		attrs := []any{"job", "expire", "event_id", ev.ID, "expired", rep.Expired, "units_freed", rep.UnitsFreed,
			"orphans", rep.Orphans, "gates_rebuilt", rep.GatesRebuilt, "ms", time.Since(start).Milliseconds()}
		if err != nil {
			log.Error("sweep", append(attrs, "err", err.Error())...)
			return rep, err
		}
		log.Info("sweep", attrs...)
		return rep, nil
	}
}
