// Command reserve is the reserve Lambda function: products and the shopper's holds (HTTP API).
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
	app.Shop.Figures = metric.New("reserve", os.Stdout) // EMF lines: CloudWatch metrics (docs/control-room.md)
	lambda.Start(app.Handler(handler.Reserve(app.Shop, app.Log).Serve))
}
