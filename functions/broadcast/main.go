// Command broadcast is the live stock broadcaster: an SQS event source on the stock-updates
// queue, posting each changed product's current value to the connections in its room.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

func main() {
	app := config.MustOpen()
	b, err := app.Broadcaster(context.Background())
	if err != nil {
		app.Log.Error("start", "err", err.Error())
		os.Exit(1)
	}
	lambda.Start(app.Handler(handler.Broadcast(b, app.Log)))
}
