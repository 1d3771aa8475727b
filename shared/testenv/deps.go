package testenv

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	"lastunit/shared/payment"
	"lastunit/shared/queue"
)

// Local stand-ins that `make services` starts; TEST_STRIPE_API_BASE and TEST_SQS_ENDPOINT
// override them.
const (
	DefaultStripeAPIBase = "http://127.0.0.1:12111"
	DefaultSQSEndpoint   = "http://127.0.0.1:9324"
	WebhookSecret        = "whsec_lastunit_test"
)

func mustAnswer(t testing.TB, what, base string) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s address %q: %v", what, base, err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		t.Fatalf("%s is not reachable at %s: %v (start it with `make services`)", what, base, err)
	}
	c.Close()
}

// Stripe returns a Stripe client on stripe-mock, verifying webhooks with WebhookSecret.
func Stripe(t testing.TB) *payment.Stripe {
	t.Helper()
	base := env("TEST_STRIPE_API_BASE", DefaultStripeAPIBase)
	mustAnswer(t, "stripe-mock", base)
	return payment.New(payment.Config{SecretKey: "sk_test_lastunit", APIBase: base, WebhookSecret: WebhookSecret, Timeout: 5 * time.Second})
}

// Queue returns a queue client on the SQS emulator with queues of the test's own prefix,
// created with the given visibility timeout.
func Queue(t testing.TB, visibility time.Duration) *queue.Queue {
	t.Helper()
	endpoint := env("TEST_SQS_ENDPOINT", DefaultSQSEndpoint)
	mustAnswer(t, "the SQS emulator", endpoint)
	q, err := queue.New(context.Background(), queue.Config{Endpoint: endpoint, Prefix: "t" + randomSuffix() + "-"})
	if err != nil {
		t.Fatalf("sqs client: %v", err)
	}
	if err := q.Ensure(context.Background(), visibility); err != nil {
		t.Fatalf("create test queues: %v", err)
	}
	return q
}

// WithPayments adds Stripe (stripe-mock) and the fulfill queue to the Env's service.
func (e *Env) WithPayments(t testing.TB) *Env {
	t.Helper()
	e.Stripe = Stripe(t)
	e.Queue = Queue(t, 2*time.Second)
	e.Shop.Pay, e.Shop.Jobs = e.Stripe, e.Queue
	return e
}
