package main

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// sqsHandler is an SQS-triggered function as Lambda invokes it.
type sqsHandler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// poll is Lambda's SQS event source mapping on one machine: it long-polls the queue for
// batches of up to 10 messages, invokes fn with them as an events.SQSEvent, deletes the
// messages that succeeded and leaves the BatchItemFailures (or the whole batch when fn
// fails) to come back after the queue's visibility timeout, until ctx ends.
func poll(ctx context.Context, log *slog.Logger, client *sqs.Client, queueURL, queueARN string, fn sqsHandler) {
	for ctx.Err() == nil {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 5,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("poll queue", "queue", queueURL, "err", err.Error())
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		if len(out.Messages) == 0 {
			continue
		}
		ev := events.SQSEvent{Records: make([]events.SQSMessage, len(out.Messages))}
		for i, m := range out.Messages {
			ev.Records[i] = events.SQSMessage{
				MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
				Md5OfBody: aws.ToString(m.MD5OfBody), Attributes: m.Attributes, EventSource: "aws:sqs", EventSourceARN: queueARN,
				AWSRegion: "us-east-1",
			}
			if ev.Records[i].Attributes == nil {
				ev.Records[i].Attributes = map[string]string{}
			}
			if _, ok := ev.Records[i].Attributes["ApproximateReceiveCount"]; !ok {
				ev.Records[i].Attributes["ApproximateReceiveCount"] = strconv.Itoa(1)
			}
		}
		resp, err := fn(ctx, ev)
		if err != nil {
			log.Error("sqs handler failed: the whole batch comes back", "queue", queueURL, "err", err.Error())
			continue
		}
		failed := make(map[string]bool, len(resp.BatchItemFailures))
		for _, f := range resp.BatchItemFailures {
			failed[f.ItemIdentifier] = true
		}
		var del []types.DeleteMessageBatchRequestEntry
		for _, m := range out.Messages {
			if !failed[aws.ToString(m.MessageId)] {
				del = append(del, types.DeleteMessageBatchRequestEntry{Id: m.MessageId, ReceiptHandle: m.ReceiptHandle})
			}
		}
		if len(del) > 0 {
			if _, err := client.DeleteMessageBatch(context.WithoutCancel(ctx), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: del}); err != nil {
				log.Warn("delete handled messages", "queue", queueURL, "err", err.Error())
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
