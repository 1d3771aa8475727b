// Command wsconnect is the WebSocket API's function: $connect, $disconnect, subscribe,
// unsubscribe and $default. It keeps the connection table of the product rooms.
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
	app.Shop.Figures = metric.New("wsconnect", os.Stdout) // EMF lines: CloudWatch metrics (docs/control-room.md)
	lambda.Start(app.Handler(handler.WSConnect(app.Shop, app.Rooms, app.Tokens(), app.Log)))
}
