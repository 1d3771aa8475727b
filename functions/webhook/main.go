// Command webhook is the Stripe webhook Lambda function: verified events into orders and
// fulfillment jobs on SQS.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

func main() {
	app := config.MustOpen(config.NeedStripe, config.NeedStripeWebhook)
	lambda.Start(app.Handler(handler.Webhook(app.Shop, app.Stripe, app.Log).Serve))
}
