package handler

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/rooms"
	"lastunit/shared/shop"
)

// Broadcast returns the broadcast function's SQS handler for the stock-updates queue. A batch
// is coalesced first: only the newest notice of each product counts, and the broadcaster
// reads the product's current value anyway. The notices of a product whose value could not be
// read are reported in BatchItemFailures, so that SQS delivers them again.
func Broadcast(b *rooms.Broadcaster, log *slog.Logger) func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		start := time.Now()
		newest := map[string]rooms.Notice{}
		ids := map[string][]string{} // product -> message ids
		var order []string
		for _, m := range ev.Records {
			var n rooms.Notice
			if err := json.Unmarshal([]byte(m.Body), &n); err != nil || !shop.ValidProductID(n.ProductID) {
				log.Error("broadcast", "message_id", m.MessageId, "err", "malformed notice")
				continue
			}
			if _, seen := newest[n.ProductID]; !seen {
				order = append(order, n.ProductID)
			}
			if n.At >= newest[n.ProductID].At {
				newest[n.ProductID] = n
			}
			ids[n.ProductID] = append(ids[n.ProductID], m.MessageId)
		}
		var resp events.SQSEventResponse
		for _, r := range b.Broadcast(ctx, order) {
			attrs := []any{"job", "broadcast", "product_id", r.ProductID, "notices", len(ids[r.ProductID]), "outcome", r.Outcome,
				"version", r.Version, "available", r.Available, "viewers", r.Viewers, "sent", r.Sent, "gone", r.Gone, "failed", r.Failed, "queue", r.Queue, "serving", r.Serving,
				"ms", time.Since(start).Milliseconds()}
			if at := newest[r.ProductID].At; at > 0 {
				attrs = append(attrs, "since_change_ms", time.Now().UnixMilli()-at)
			}
			if r.Err != nil {
				for _, id := range ids[r.ProductID] {
					resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
				}
				log.Error("broadcast", append(attrs, "err", r.Err.Error())...)
				continue
			}
			log.Info("broadcast", attrs...)
		}
		return resp, nil
	}
}
