// Command fulfill is the fulfillment worker: an SQS event source on the fulfill-order queue,
// with partial batch failures.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

func main() {
	app := config.MustOpen()
	lambda.Start(app.Handler(handler.Fulfill(app.Shop, app.Log)))
}
