// Command janitor is the daily clean-up (EventBridge): failed jobs no admin handled within
// FAILED_JOB_MAX_AGE are cancelled, refunded and restocked.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

func main() {
	app := config.MustOpen(config.NeedStripe)
	lambda.Start(app.Handler(handler.Janitor(app.Shop, app.Log)))
}
