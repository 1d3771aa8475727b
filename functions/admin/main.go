// Command admin is the admin Lambda function: the product ledger, restocking, orders and failed jobs (HTTP API).
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

func main() {
	app := config.MustOpen(config.NeedStripe) // cancelling a failed job refunds it
	lambda.Start(app.Handler(handler.Admin(app.Shop, app.Log).Serve))
}
