// Command admin is the admin Lambda function: the product ledger and restocking (HTTP API).
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

func main() {
	app := config.MustOpen()
	lambda.Start(handler.Admin(app.Shop, app.Log).Serve)
}
