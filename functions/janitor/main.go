// Command janitor is the daily clean-up (EventBridge): failed jobs no admin handled within
// FAILED_JOB_MAX_AGE are cancelled, refunded and restocked.
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
	app.Shop.Figures = metric.New("janitor", os.Stdout) // EMF lines: CloudWatch metrics (docs/control-room.md)
	lambda.Start(app.Handler(handler.Janitor(app.Shop, app.Log)))
}
