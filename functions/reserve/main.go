// Command reserve is the reserve Lambda function: products and the shopper's holds (HTTP API).
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

func main() {
	app := config.MustOpen()
	lambda.Start(app.Handler(handler.Reserve(app.Shop, app.Log).Serve))
}
