package queue

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"lastunit/shared/shop"
)

var _ shop.DeadLetters = (*Queue)(nil)

// maxDeadBatches bounds one scan of the dead-letter queue (10 messages a batch).
const maxDeadBatches = 1000

// scanDead receives every message of the dead-letter queue once and asks decide what to do
// with its job: move it back to the fulfill queue, delete it, or leave it. Retry and redrive
// are receive → send → delete, which works on real SQS and on emulators that lack
// StartMessageMoveTask. Messages left alone are made visible again at the end.
func (q *Queue) scanDead(ctx context.Context, decide func(shop.FulfillJob) (move, drop bool)) ([]string, error) {
	dlq, err := q.URL(ctx, FulfillDLQ)
	if err != nil {
		return nil, err
	}
	main, err := q.URL(ctx, Fulfill)
	if err != nil {
		return nil, err
	}
	var moved []string
	var keep []types.Message
	defer func() {
		for _, m := range keep {
			q.Client.ChangeMessageVisibility(context.WithoutCancel(ctx), &sqs.ChangeMessageVisibilityInput{ //nolint:errcheck
				QueueUrl: aws.String(dlq), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
		}
	}()
	for range maxDeadBatches {
		out, err := q.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(dlq), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60,
		})
		if err != nil {
			return moved, fmt.Errorf("receive dead letters: %w", translate(err))
		}
		if len(out.Messages) == 0 {
			return moved, nil
		}
		for _, m := range out.Messages {
			var job shop.FulfillJob
			_ = json.Unmarshal([]byte(aws.ToString(m.Body)), &job)
			move, drop := decide(job)
			if move {
				if _, err := q.Client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(main), MessageBody: m.Body}); err != nil {
					return moved, fmt.Errorf("send job back for %s: %w", job.OrderID, translate(err))
				}
				moved = append(moved, job.OrderID)
			}
			if !move && !drop {
				keep = append(keep, m)
				continue
			}
			if _, err := q.Client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(dlq), ReceiptHandle: m.ReceiptHandle}); err != nil {
				return moved, fmt.Errorf("delete dead letter of %s: %w", job.OrderID, translate(err))
			}
		}
	}
	return moved, fmt.Errorf("dead-letter queue holds more than %d messages", 10*maxDeadBatches)
}

// RetryDead moves the order's dead-lettered jobs back to the fulfill queue.
func (q *Queue) RetryDead(ctx context.Context, orderID string) (bool, error) {
	moved, err := q.scanDead(ctx, func(j shop.FulfillJob) (bool, bool) { return j.OrderID == orderID, false })
	return len(moved) > 0, err
}

// RedriveDead moves every dead-lettered job back to the fulfill queue.
func (q *Queue) RedriveDead(ctx context.Context) ([]string, error) {
	return q.scanDead(ctx, func(shop.FulfillJob) (bool, bool) { return true, false })
}

// ForgetDead deletes the order's dead-lettered jobs.
func (q *Queue) ForgetDead(ctx context.Context, orderID string) error {
	_, err := q.scanDead(ctx, func(j shop.FulfillJob) (bool, bool) { return false, j.OrderID == orderID })
	return err
}
