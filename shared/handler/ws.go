package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/apigw"
	"lastunit/shared/rooms"
	"lastunit/shared/shop"
)

// The WebSocket API's route keys; its route selection expression is $request.body.action.
const (
	RouteWSConnect     = "$connect"
	RouteWSDisconnect  = "$disconnect"
	RouteWSDefault     = "$default"
	RouteWSSubscribe   = "subscribe"
	RouteWSUnsubscribe = "unsubscribe"
)

// WSRoutes are the routes of the WebSocket API, all integrated with the wsconnect function.
// subscribe, unsubscribe and $default are two-way: the function's response body is sent
// back to the client (a route response on each in the stack).
var WSRoutes = []string{RouteWSConnect, RouteWSDisconnect, RouteWSDefault, RouteWSSubscribe, RouteWSUnsubscribe}

// MaxWSMessage is the largest client message wsconnect reads (subscribe is ~60 bytes).
const MaxWSMessage = 4 << 10

// TokenVerifier checks the optional ?token= of a WebSocket $connect.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (apigw.Identity, error)
}

// wsMessage is a client message: {"action": "subscribe", "product_id": "p1"}.
type wsMessage struct {
	Action    string `json:"action"`
	ProductID string `json:"product_id"`
}

// WSFunc is the wsconnect function as Lambda invokes it.
type WSFunc func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)

// WSConnect returns the wsconnect function: $connect (a ?token= must verify; none is an anonymous
// viewer), $disconnect (the connection leaves every room), subscribe (join the product's
// room, answer its current value at once), unsubscribe, and $default (an error message).
// Every message it cannot act on is answered with an error message, and the connection
// stays open. Tokens may be nil: then every token is refused.
func WSConnect(svc *shop.Service, table *rooms.Table, tokens TokenVerifier, log *slog.Logger) WSFunc {
	return func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		start := time.Now()
		rc := ev.RequestContext
		attrs := []any{"route", rc.RouteKey, "connection_id", rc.ConnectionID, "request_id", rc.RequestID}
		var resp events.APIGatewayProxyResponse
		var err error
		switch rc.RouteKey {
		case RouteWSConnect:
			var user string
			resp, user, err = wsConnect(ctx, ev, tokens)
			attrs = append(attrs, "user", user)
		case RouteWSDisconnect:
			var n int
			n, err = table.Remove(ctx, rc.ConnectionID)
			attrs = append(attrs, "rooms_left", n, "disconnect_status", rc.DisconnectStatusCode)
			resp = events.APIGatewayProxyResponse{StatusCode: http.StatusOK}
		default:
			var pid string
			var body []byte
			body, pid, err = wsMessageRoute(ctx, svc, table, ev)
			attrs = append(attrs, "product_id", pid)
			if err != nil {
				body = rooms.ErrorFor(err).JSON()
			}
			resp = events.APIGatewayProxyResponse{StatusCode: http.StatusOK, Body: string(body)}
		}
		attrs = append(attrs, "status", resp.StatusCode, "ms", time.Since(start).Milliseconds())
		switch code := shop.ErrorCode(err); {
		case err == nil:
			log.Info("ws", attrs...)
		case code == shop.CodeInternal || code == shop.CodeUnavailable:
			log.Error("ws", append(attrs, "code", code, "err", err.Error())...)
		default:
			log.Info("ws", append(attrs, "code", code, "err", err.Error())...)
		}
		if err != nil && rc.RouteKey == RouteWSDisconnect {
			// The table's entries expire with the connection; API Gateway ignores the answer.
			return events.APIGatewayProxyResponse{StatusCode: http.StatusInternalServerError}, nil
		}
		return resp, nil
	}
}

// wsConnect accepts a connection without a token, or with one that verifies.
func wsConnect(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest, tokens TokenVerifier) (events.APIGatewayProxyResponse, string, error) {
	raw, ok := ev.QueryStringParameters["token"]
	if !ok {
		return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, "", nil
	}
	if tokens == nil || raw == "" {
		err := shop.Errorf(shop.CodeUnauthenticated, "the token is not valid")
		return wsRefuse(err), "", err
	}
	id, verr := tokens.Verify(ctx, raw)
	if verr != nil {
		err := shop.Errorf(shop.CodeUnauthenticated, "missing, malformed, expired or badly signed token")
		return wsRefuse(err), "", errors.Join(err, verr)
	}
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, id.UserID, nil
}

// wsRefuse is a refused handshake: API Gateway answers the upgrade with the status.
func wsRefuse(err error) events.APIGatewayProxyResponse {
	r := apigw.ErrorResponse(err)
	return events.APIGatewayProxyResponse{StatusCode: r.StatusCode, Headers: r.Headers, Body: r.Body}
}

// wsMessageRoute handles subscribe, unsubscribe and $default; it returns the body to send back.
func wsMessageRoute(ctx context.Context, svc *shop.Service, table *rooms.Table, ev events.APIGatewayWebsocketProxyRequest) ([]byte, string, error) {
	rc := ev.RequestContext
	if rc.RouteKey != RouteWSSubscribe && rc.RouteKey != RouteWSUnsubscribe {
		return nil, "", wsDefault(ev.Body)
	}
	m, err := decodeWSMessage(ev.Body, rc.RouteKey)
	if err != nil {
		return nil, "", err
	}
	if rc.RouteKey == RouteWSUnsubscribe {
		return nil, m.ProductID, table.Leave(ctx, rc.ConnectionID, m.ProductID)
	}
	// API Gateway's clock: the connection's two hours are counted on it.
	now := time.UnixMilli(rc.RequestTimeEpoch)
	if rc.RequestTimeEpoch == 0 {
		now = svc.Now()
	}
	connectedAt := time.UnixMilli(rc.ConnectedAt)
	if rc.ConnectedAt == 0 {
		connectedAt = now
	}
	// Join first, then read: a change after the read reaches this connection through its
	// room, and one before it is in the value read. The client keeps the higher version.
	if err := table.Join(ctx, rc.ConnectionID, m.ProductID, connectedAt, now); err != nil {
		return nil, m.ProductID, err
	}
	msg, ok, err := table.Snapshot(ctx, m.ProductID)
	if err == nil && !ok {
		// No gate: an unknown product, or one whose gate is being rebuilt (shop rebuilds it).
		if _, err = svc.Product(ctx, m.ProductID); shop.ErrorCode(err) == shop.CodeNotFound {
			if lerr := table.Leave(ctx, rc.ConnectionID, m.ProductID); lerr != nil {
				return nil, m.ProductID, lerr
			}
			return nil, m.ProductID, shop.Errorf(shop.CodeNotFound, "no product %q", m.ProductID)
		}
		if err == nil {
			msg, ok, err = table.Snapshot(ctx, m.ProductID)
			if err == nil && !ok {
				err = shop.ErrUnavailable // rebuilt and dropped again at once: the client retries
			}
		}
	}
	if err != nil {
		return nil, m.ProductID, err
	}
	return msg.JSON(), m.ProductID, nil
}

// decodeWSMessage reads a subscribe or unsubscribe message strictly.
func decodeWSMessage(body, action string) (wsMessage, error) {
	if len(body) > MaxWSMessage {
		return wsMessage{}, shop.Invalid("", "a message may be at most %d bytes", MaxWSMessage)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(body)))
	dec.DisallowUnknownFields()
	var m wsMessage
	if err := dec.Decode(&m); err != nil {
		return wsMessage{}, shop.Invalid("", `a %s message is {"action": %q, "product_id": "..."} with no other fields`, action, action)
	}
	if dec.More() {
		return wsMessage{}, shop.Invalid("", "data after the message")
	}
	if !shop.ValidProductID(m.ProductID) {
		return wsMessage{}, shop.Invalid("product_id", "product_id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	return m, nil
}

// wsDefault explains why a message matched no route.
func wsDefault(body string) error {
	var m map[string]any
	if len(body) > MaxWSMessage || json.Unmarshal([]byte(body), &m) != nil {
		return shop.Invalid("", `a message is a JSON object such as {"action": "subscribe", "product_id": "p1"}`)
	}
	a, ok := m["action"].(string)
	if !ok {
		return shop.Invalid("action", `a message needs an "action": "subscribe" or "unsubscribe"`)
	}
	if len(a) > 64 {
		a = a[:64]
	}
	return shop.Invalid("action", `unknown action %q: use "subscribe" or "unsubscribe"`, a)
}
