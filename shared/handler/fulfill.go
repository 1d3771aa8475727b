package handler

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/shop"
)

// Fulfill returns the fulfill function's SQS handler. Each job is fulfilled on its own; the
// ones that fail are reported in BatchItemFailures so that only they are delivered again
// (and dead-lettered after shop.MaxAttempts receives).
func Fulfill(svc *shop.Service, log *slog.Logger) func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		for _, m := range ev.Records {
			start := time.Now()
			var job shop.FulfillJob
			if err := json.Unmarshal([]byte(m.Body), &job); err != nil || job.OrderID == "" {
				// No retry can fix a malformed job: acknowledge it and say so.
				log.Error("fulfill job", "message_id", m.MessageId, "err", "malformed job body")
				continue
			}
			attempt, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
			err := svc.Fulfill(ctx, job.OrderID, attempt)
			attrs := []any{"job", "fulfill", "message_id", m.MessageId, "order_id", job.OrderID, "attempt", attempt,
				"ms", time.Since(start).Milliseconds()}
			if err != nil {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
				log.Error("fulfill job", append(attrs, "err", err.Error(), "dead_lettered", attempt >= shop.MaxAttempts)...)
				continue
			}
			log.Info("fulfill job", attrs...)
		}
		return resp, nil
	}
}
