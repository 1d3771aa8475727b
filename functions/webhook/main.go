// Command webhook is the Stripe webhook Lambda function: verified events into orders and
// fulfillment jobs on SQS.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
	"lastunit/shared/metric"
)

func main() {
	app := config.MustOpen(config.NeedStripe, config.NeedStripeWebhook)
	app.Shop.Figures = metric.New("webhook", os.Stdout) // EMF lines: CloudWatch metrics (docs/control-room.md)
	lambda.Start(app.Handler(handler.Webhook(app.Shop, app.Stripe, app.Log).Serve))
}
