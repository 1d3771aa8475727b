package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// The live stock queue: notices of stock changes for the broadcaster, and its dead letters.
const (
	StockUpdates    = "stock-updates"
	StockUpdatesDLQ = "stock-updates-dlq"
)

// EnsureStockUpdates creates the stock-updates queue and its dead-letter queue if they are
// missing, with the redrive policy (MaxReceives) and the visibility timeout. The local runner
// calls it on start; in AWS the CDK stack creates them.
func (q *Queue) EnsureStockUpdates(ctx context.Context, visibility time.Duration) error {
	dlq, err := q.Client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(q.Name(StockUpdatesDLQ)),
		Attributes: map[string]string{"MessageRetentionPeriod": "86400"},
	})
	if err != nil {
		return fmt.Errorf("create queue %s: %w", q.Name(StockUpdatesDLQ), translate(err))
	}
	attrs, err := q.Client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: dlq.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return fmt.Errorf("read arn of %s: %w", q.Name(StockUpdatesDLQ), translate(err))
	}
	redrive, _ := json.Marshal(map[string]string{
		"deadLetterTargetArn": attrs.Attributes[string(types.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     strconv.Itoa(MaxReceives),
	})
	main, err := q.Client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(q.Name(StockUpdates)),
		Attributes: map[string]string{
			"VisibilityTimeout": strconv.Itoa(max(1, int(visibility/time.Second))),
			// A notice older than a minute is worthless: a newer change or the viewer's
			// heartbeat has brought the value since.
			"MessageRetentionPeriod": "60",
			"RedrivePolicy":          string(redrive),
		},
	})
	if err != nil {
		return fmt.Errorf("create queue %s: %w", q.Name(StockUpdates), translate(err))
	}
	q.mu.Lock()
	q.urls[StockUpdatesDLQ], q.urls[StockUpdates] = *dlq.QueueUrl, *main.QueueUrl
	q.mu.Unlock()
	return nil
}

// SendBatch sends the bodies to the named queue, ten to a SendMessageBatch call. It fails if
// any body was not accepted.
func (q *Queue) SendBatch(ctx context.Context, name string, bodies []string) error {
	url, err := q.URL(ctx, name)
	if err != nil {
		return err
	}
	for start := 0; start < len(bodies); start += 10 {
		end := min(start+10, len(bodies))
		entries := make([]types.SendMessageBatchRequestEntry, 0, end-start)
		for i := start; i < end; i++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(bodies[i])})
		}
		out, err := q.Client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			return fmt.Errorf("send to %s: %w", q.Name(name), translate(err))
		}
		if len(out.Failed) > 0 {
			f := out.Failed[0]
			return fmt.Errorf("send to %s: %d of %d refused, first: %s %s", q.Name(name), len(out.Failed), len(entries), aws.ToString(f.Code), aws.ToString(f.Message))
		}
	}
	return nil
}

// SendStockNotices sends stock-change notices to the stock-updates queue (a rooms.SendFunc).
func (q *Queue) SendStockNotices(ctx context.Context, bodies []string) error {
	return q.SendBatch(ctx, StockUpdates, bodies)
}

// SendDelayed sends one body to the named queue, to be delivered after delay (whole seconds,
// at most 15 minutes: SQS's DelaySeconds).
func (q *Queue) SendDelayed(ctx context.Context, name, body string, delay time.Duration) error {
	url, err := q.URL(ctx, name)
	if err != nil {
		return err
	}
	secs := int32(min(900, max(0, (delay+time.Second-1)/time.Second)))
	if _, err := q.Client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body), DelaySeconds: secs}); err != nil {
		return fmt.Errorf("send to %s: %w", q.Name(name), translate(err))
	}
	return nil
}
