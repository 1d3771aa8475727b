// Package queue is lastunit's SQS adapter (aws-sdk-go-v2): the fulfill-order queue and its
// dead-letter queue. Locally it talks to an SQS emulator at SQS_ENDPOINT; in AWS the queue
// URLs come from the environment the CDK stack sets.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"lastunit/shared/shop"
)

// Queue names, after the prefix.
const (
	Fulfill    = "fulfill-order"
	FulfillDLQ = "fulfill-order-dlq"
)

// MaxReceives is how many times SQS delivers a job before it dead-letters it.
const MaxReceives = shop.MaxAttempts

// Config is how to reach SQS.
type Config struct {
	Endpoint string            // SQS_ENDPOINT; "" for AWS
	Region   string            // AWS_REGION (default us-east-1)
	Prefix   string            // QUEUE_PREFIX: queue names start with it
	URLs     map[string]string // known queue URLs by name (from the environment in AWS)
}

// Queue implements shop.Jobs on SQS.
type Queue struct {
	Client *sqs.Client
	prefix string
	mu     sync.Mutex
	urls   map[string]string
}

var _ shop.Jobs = (*Queue)(nil)

// New builds the SQS client. With an endpoint (the local emulator) it uses static dummy
// credentials; without, the default AWS credential chain.
func New(ctx context.Context, c Config) (*Queue, error) {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(c.Region)}
	if c.Endpoint != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	client := sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
	})
	q := &Queue{Client: client, prefix: c.Prefix, urls: map[string]string{}}
	for name, url := range c.URLs {
		if url != "" {
			q.urls[name] = url
		}
	}
	return q, nil
}

// Name is a queue's full name, with the prefix.
func (q *Queue) Name(name string) string { return q.prefix + name }

// URL returns a queue's URL, asking SQS once.
func (q *Queue) URL(ctx context.Context, name string) (string, error) {
	q.mu.Lock()
	url, ok := q.urls[name]
	q.mu.Unlock()
	if ok {
		return url, nil
	}
	out, err := q.Client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(q.Name(name))})
	if err != nil {
		return "", fmt.Errorf("get url of queue %s: %w", q.Name(name), translate(err))
	}
	q.mu.Lock()
	q.urls[name] = *out.QueueUrl
	q.mu.Unlock()
	return *out.QueueUrl, nil
}

// Ensure creates the fulfill queue and its dead-letter queue if they are missing, with the
// redrive policy (MaxReceives) and the visibility timeout. The local runner calls it on start;
// in AWS the CDK stack creates them.
func (q *Queue) Ensure(ctx context.Context, visibility time.Duration) error {
	dlq, err := q.Client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(q.Name(FulfillDLQ)),
		Attributes: map[string]string{"MessageRetentionPeriod": "1209600"},
	})
	if err != nil {
		return fmt.Errorf("create queue %s: %w", q.Name(FulfillDLQ), translate(err))
	}
	attrs, err := q.Client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: dlq.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return fmt.Errorf("read arn of %s: %w", q.Name(FulfillDLQ), translate(err))
	}
	redrive, _ := json.Marshal(map[string]string{
		"deadLetterTargetArn": attrs.Attributes[string(types.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     strconv.Itoa(MaxReceives),
	})
	main, err := q.Client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(q.Name(Fulfill)),
		Attributes: map[string]string{
			"VisibilityTimeout": strconv.Itoa(int(visibility / time.Second)),
			"RedrivePolicy":     string(redrive),
		},
	})
	if err != nil {
		return fmt.Errorf("create queue %s: %w", q.Name(Fulfill), translate(err))
	}
	q.mu.Lock()
	q.urls[FulfillDLQ], q.urls[Fulfill] = *dlq.QueueUrl, *main.QueueUrl
	q.mu.Unlock()
	return nil
}

// EnqueueFulfill sends a fulfillment job; it returns once SQS has it durably.
func (q *Queue) EnqueueFulfill(ctx context.Context, orderID string) error {
	url, err := q.URL(ctx, Fulfill)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(shop.FulfillJob{OrderID: orderID})
	if _, err := q.Client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(string(body))}); err != nil {
		return fmt.Errorf("send fulfill job for %s: %w", orderID, translate(err))
	}
	return nil
}

// translate marks SQS that cannot be reached as shop.ErrUnavailable.
func translate(err error) error {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() > 0 && re.HTTPStatusCode() < 500 {
		return err
	}
	return fmt.Errorf("%w: %w", shop.ErrUnavailable, err)
}
