package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"
)

// MaxReceiveCount is how many receives a message gets before its queue dead-letters it
// (shared/queue.MaxReceives).
const MaxReceiveCount = 3

// visibilityFactor times the consumer's timeout is a queue's visibility timeout, as AWS
// advises for Lambda event sources, so a message is not redelivered while a batch still runs.
const visibilityFactor = 6

// Queues is the fulfill-order and stock-updates queues and their dead-letter queues.
type Queues struct {
	Fulfill, FulfillDLQ           awssqs.Queue
	StockUpdates, StockUpdatesDLQ awssqs.Queue
	// ScheduleFailures is where a scheduled run ends that failed: the expire and janitor
	// functions' on-failure destination (after their retries) and their EventBridge targets'
	// dead-letter queue (an event EventBridge could not deliver). Kept 14 days; an alarm
	// fires on the first message.
	ScheduleFailures awssqs.Queue
}

func newQueues(s awscdk.Stack, prefix string) *Queues {
	q := &Queues{}
	q.Fulfill, q.FulfillDLQ = queuePair(s, prefix, "FulfillOrder", "fulfill-order", lookup("fulfill").TimeoutSeconds,
		awscdk.Duration_Days(jsii.Number(14)))
	// Stock updates are stale within seconds; the next change carries the latest value anyway.
	q.StockUpdates, q.StockUpdatesDLQ = queuePair(s, prefix, "StockUpdates", "stock-updates", lookup("broadcast").TimeoutSeconds,
		awscdk.Duration_Hours(jsii.Number(1)))
	q.ScheduleFailures = awssqs.NewQueue(s, jsii.String("ScheduleFailures"), &awssqs.QueueProps{
		QueueName:       name(prefix, "schedule-failures"),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
	})
	return q
}

// queuePair builds a queue and its dead-letter queue (kept 14 days, for an admin to look at).
func queuePair(s awscdk.Stack, prefix, id, queueName string, consumerTimeout int, retention awscdk.Duration) (main, dlq awssqs.Queue) {
	dlq = awssqs.NewQueue(s, jsii.String(id+"DLQ"), &awssqs.QueueProps{
		QueueName:       name(prefix, queueName+"-dlq"),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
	})
	main = awssqs.NewQueue(s, jsii.String(id), &awssqs.QueueProps{
		QueueName:         name(prefix, queueName),
		VisibilityTimeout: seconds(visibilityFactor * consumerTimeout),
		RetentionPeriod:   retention,
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: dlq, MaxReceiveCount: jsii.Number(MaxReceiveCount)},
	})
	return main, dlq
}
