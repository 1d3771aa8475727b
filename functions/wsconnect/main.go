// Command wsconnect is the WebSocket API's function: $connect, $disconnect, subscribe,
// unsubscribe and $default. It keeps the connection table of the product rooms.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

func main() {
	app := config.MustOpen()
	lambda.Start(app.Handler(handler.WSConnect(app.Shop, app.Rooms, app.Tokens(), app.Log)))
}
