// Command expire is the expiry sweep, run by an EventBridge schedule every minute.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
	"lastunit/shared/metric"
)

func main() {
	app := config.MustOpen(config.NeedStripe)          // the payment deadline cancels PaymentIntents
	app.Shop.Figures = metric.New("expire", os.Stdout) // EMF lines: CloudWatch metrics (docs/control-room.md)
	lambda.Start(app.Handler(handler.Expire(app.Shop, app.Log)))
}
