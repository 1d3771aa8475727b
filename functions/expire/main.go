// Command expire is the expiry sweep, run by an EventBridge schedule every minute.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

func main() {
	app := config.MustOpen(config.NeedStripe) // the payment deadline cancels PaymentIntents
	lambda.Start(app.Handler(handler.Expire(app.Shop, app.Log)))
}
