// Command checkout is the checkout Lambda function: POST /checkout and GET /orders/{id}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

func main() {
	app := config.MustOpen(config.NeedStripe)
	lambda.Start(app.Handler(handler.Checkout(app.Shop, app.Log).Serve))
}
