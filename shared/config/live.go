package config

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/jwtauth"
	"lastunit/shared/lambdaext"
	"lastunit/shared/queue"
	"lastunit/shared/rooms"
)

// LiveConfig is the live stock's settings.
type LiveConfig struct {
	// StockQueueURL and StockDLQURL are the stock-updates queues (STOCK_UPDATES_QUEUE_URL,
	// STOCK_UPDATES_DLQ_URL, set by the stack; locally found by name).
	StockQueueURL string
	StockDLQURL   string
	// ManagementEndpoint is where the broadcaster posts to connections
	// (WS_MANAGEMENT_ENDPOINT: https://{api-id}.execute-api.{region}.amazonaws.com/{stage};
	// the local runner's own URL locally).
	ManagementEndpoint string
	// How $connect checks a ?token=: a Cognito user pool (JWT_ISSUER, JWT_CLIENT_ID) in AWS,
	// the runner's HS256 secret (LOCAL_JWT_SECRET) locally. With neither, tokens are refused.
	JWTIssuer      string
	JWTClientID    string
	LocalJWTSecret string
}

func loadLive() LiveConfig {
	return LiveConfig{
		StockQueueURL:      os.Getenv("STOCK_UPDATES_QUEUE_URL"),
		StockDLQURL:        os.Getenv("STOCK_UPDATES_DLQ_URL"),
		ManagementEndpoint: os.Getenv("WS_MANAGEMENT_ENDPOINT"),
		JWTIssuer:          os.Getenv("JWT_ISSUER"),
		JWTClientID:        os.Getenv("JWT_CLIENT_ID"),
		LocalJWTSecret:     os.Getenv("LOCAL_JWT_SECRET"),
	}
}

// openLive builds the connection table and the stock-change notifier, and tells the shop to
// use it.
func (a *App) openLive() {
	a.Rooms = rooms.NewTable(a.Redis)
	a.Notifier = rooms.NewNotifier(a.Queue.SendStockNotices, a.Log, a.Shop.Now)
	a.Shop.Notify = a.Notifier
}

// Tokens returns the checker of WebSocket tokens; nil (every token refused) when none is configured.
func (a *App) Tokens() *jwtauth.Verifier {
	switch l := a.Config.Live; {
	case l.JWTIssuer != "":
		return jwtauth.Cognito(l.JWTIssuer, l.JWTClientID, nil)
	case l.LocalJWTSecret != "":
		return jwtauth.HS256([]byte(l.LocalJWTSecret))
	}
	return nil
}

// Broadcaster returns the live stock broadcaster, posting through the management API.
func (a *App) Broadcaster(ctx context.Context) (*rooms.Broadcaster, error) {
	api, err := rooms.NewAPI(ctx, rooms.APIConfig{Endpoint: a.Config.Live.ManagementEndpoint, Region: os.Getenv("AWS_REGION")})
	if err != nil {
		return nil, err
	}
	b := rooms.NewBroadcaster(a.Redis, api, a.Log)
	b.Now = a.Shop.Now
	b.Again = func(ctx context.Context, productID string, delay time.Duration) error {
		body, _ := json.Marshal(rooms.Notice{ProductID: productID, At: a.Shop.Now().UnixMilli()})
		return a.Queue.SendDelayed(ctx, queue.StockUpdates, string(body), delay)
	}
	return b, nil
}

// Handler wraps a function's handler for lambda.Start: in Lambda, the stock-change notices
// a call queued are sent after its response went out and before the environment is frozen
// (see lambdaext). Call it before lambda.Start.
func (a *App) Handler(h any) lambda.Handler {
	return lambdaext.Wrap(h, a.Notifier.Drain, a.Log)
}

// StockQueueName is the stock-updates queue's name (with the prefix).
func (a *App) StockQueueName() string { return a.Queue.Name(queue.StockUpdates) }
