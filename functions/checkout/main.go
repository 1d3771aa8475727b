// Command checkout is the checkout Lambda function: POST /checkout and GET /orders/{id}.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
	"lastunit/shared/metric"
)

func main() {
	app := config.MustOpen(config.NeedStripe)
	app.Shop.Figures = metric.New("checkout", os.Stdout) // EMF lines: CloudWatch metrics (docs/control-room.md)
	lambda.Start(app.Handler(handler.Checkout(app.Shop, app.Log).Serve))
}
