// Command fulfill is the fulfillment worker: an SQS event source on the fulfill-order queue,
// with partial batch failures.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
	"lastunit/shared/metric"
)

func main() {
	app := config.MustOpen()
	app.Shop.Figures = metric.New("fulfill", os.Stdout) // EMF lines: CloudWatch metrics (docs/control-room.md)
	lambda.Start(app.Handler(handler.Fulfill(app.Shop, app.Log)))
}
