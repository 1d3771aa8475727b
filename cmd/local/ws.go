package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"

	"lastunit/shared/apigw"
	"lastunit/shared/config"
	"lastunit/shared/handler"
	"lastunit/shared/queue"
	"lastunit/shared/shop"
)

// API Gateway's WebSocket limits that the runner keeps too.
const (
	wsMaxFrame     = 128 << 10        // largest message API Gateway takes (128 KB)
	wsIdleTimeout  = 10 * time.Minute // closed after this long without a client message
	wsMaxAge       = 2 * time.Hour    // no connection lives longer
	wsPostTimeout  = 5 * time.Second  // a post to a client that does not read fails after this
	wsInvokeBudget = 30 * time.Second // the wsconnect function's timeout
	// stockVisibility is how long a failed broadcast waits before SQS delivers it again.
	stockVisibility = 5 * time.Second
)

// wsGateway is API Gateway's WebSocket API on one machine: it upgrades /ws, turns the
// connect, every frame and the close into events.APIGatewayWebsocketProxyRequest for the
// wsconnect function (route key from the frame's "action" when a route has that key, else
// $default; a two-way route's response body goes back to the client), and serves the
// management API (/@connections/{id}) that the broadcaster's SDK client posts to.
type wsGateway struct {
	log    *slog.Logger
	fn     handler.WSFunc
	routes map[string]bool
	idle   time.Duration
	maxAge time.Duration

	mu    sync.Mutex
	conns map[string]*wsConn
}

// wsConn is one open WebSocket.
type wsConn struct {
	id          string
	ws          *websocket.Conn
	connectedAt time.Time
	sourceIP    string
	userAgent   string
	lastActive  atomic.Int64 // ms
	closing     atomic.Pointer[string]
}

func newWSGateway(log *slog.Logger, fn handler.WSFunc) *wsGateway {
	g := &wsGateway{log: log, fn: fn, routes: map[string]bool{}, idle: wsIdleTimeout, maxAge: wsMaxAge, conns: map[string]*wsConn{}}
	for _, r := range handler.WSRoutes {
		if !strings.HasPrefix(r, "$") {
			g.routes[r] = true
		}
	}
	return g
}

// mount adds /ws and the management API to the runner's routes.
func (g *wsGateway) mount(s *server) {
	s.mux.HandleFunc("/ws", g.serveWS)
	s.mux.HandleFunc("/@connections/{id}", g.manage)
}

// startLive is the runner's live stock: the stock-updates queue (with its dead-letter queue),
// the WebSocket API on /ws and /@connections, and the broadcaster polling the queue.
func startLive(ctx context.Context, app *config.App, s *server) (*wsGateway, error) {
	if err := app.Queue.EnsureStockUpdates(ctx, stockVisibility); err != nil {
		return nil, err
	}
	g := newWSGateway(app.Log, handler.WSConnect(app.Shop, app.Rooms, s.wsTokens(app.Tokens()), app.Log))
	g.mount(s)
	b, err := app.Broadcaster(ctx)
	if err != nil {
		return nil, err
	}
	url, err := app.Queue.URL(ctx, queue.StockUpdates)
	if err != nil {
		return nil, err
	}
	go poll(ctx, app.Log, app.Queue.Client, url, "arn:aws:sqs:us-east-1:000000000000:"+app.StockQueueName(), handler.Broadcast(b, app.Log))
	return g, nil
}

// wsDefaults points the broadcaster at the runner's own management API unless told otherwise.
func wsDefaults() {
	if os.Getenv("WS_MANAGEMENT_ENDPOINT") == "" {
		os.Setenv("WS_MANAGEMENT_ENDPOINT", "http://"+os.Getenv("LOCAL_ADDR"))
	}
}

// newConnectionID returns an id shaped like API Gateway's ("L0SM9cOFvHcCIhw="), which the
// SDK must percent-encode in the management API's path.
func newConnectionID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return base64.URLEncoding.EncodeToString(b)
}

// event is the wsconnect event for one connect, message or disconnect.
func (g *wsGateway) event(c *wsConn, r *http.Request, route, eventType string, now time.Time) events.APIGatewayWebsocketProxyRequest {
	reqID := shop.NewID("req_")
	ev := events.APIGatewayWebsocketProxyRequest{
		RequestContext: events.APIGatewayWebsocketProxyRequestContext{
			RouteKey: route, EventType: eventType, MessageDirection: "IN", Stage: "local", APIID: "local",
			ConnectionID: c.id, ConnectedAt: c.connectedAt.UnixMilli(), RequestID: reqID, ExtendedRequestID: reqID,
			RequestTime: now.UTC().Format("02/Jan/2006:15:04:05 -0700"), RequestTimeEpoch: now.UnixMilli(),
			Identity: events.APIGatewayRequestIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
		},
	}
	if r != nil { // $connect carries the handshake's headers and query string
		ev.RequestContext.DomainName = r.Host
		ev.Headers, ev.MultiValueHeaders = map[string]string{}, map[string][]string{}
		for k, v := range r.Header {
			ev.Headers[k], ev.MultiValueHeaders[k] = v[0], v
		}
		if q := r.URL.Query(); len(q) > 0 {
			ev.QueryStringParameters, ev.MultiValueQueryStringParameters = map[string]string{}, map[string][]string{}
			for k, v := range q {
				ev.QueryStringParameters[k], ev.MultiValueQueryStringParameters[k] = v[len(v)-1], v
			}
		}
	}
	return ev
}

func (g *wsGateway) invoke(ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wsInvokeBudget)
	defer cancel()
	return g.fn(ctx, ev)
}

// serveWS is one WebSocket from handshake to close.
func (g *wsGateway) serveWS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		resp := apigw.ErrorResponse(shop.Invalid("", "this is a WebSocket endpoint: connect with a WebSocket client"))
		resp.StatusCode = http.StatusUpgradeRequired
		apigw.WriteHTTP(w, resp)
		return
	}
	now := time.Now()
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	c := &wsConn{id: newConnectionID(), connectedAt: now, sourceIP: host, userAgent: r.UserAgent()}
	c.lastActive.Store(now.UnixMilli())
	resp, err := g.invoke(g.event(c, r, handler.RouteWSConnect, "CONNECT", now))
	if err != nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		// API Gateway refuses the handshake with the function's status.
		if err != nil {
			g.log.Error("ws connect", "connection_id", c.id, "err", err.Error())
			resp = events.APIGatewayProxyResponse{StatusCode: http.StatusInternalServerError, Body: `{"message": "Internal server error"}`}
		}
		for k, v := range resp.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(resp.StatusCode)
		io.WriteString(w, resp.Body) //nolint:errcheck
		return
	}
	// API Gateway does not check the Origin of a WebSocket handshake.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		g.disconnect(c, 1006, "handshake failed")
		return
	}
	ws.SetReadLimit(wsMaxFrame)
	c.ws = ws
	g.mu.Lock()
	g.conns[c.id] = c
	g.mu.Unlock()
	code, reason := g.read(c)
	g.mu.Lock()
	delete(g.conns, c.id)
	g.mu.Unlock()
	ws.CloseNow() //nolint:errcheck
	g.disconnect(c, code, reason)
}

// read invokes the function for every frame until the connection ends, and says why it ended.
func (g *wsGateway) read(c *wsConn) (int64, string) {
	for {
		limit := min(g.idle, time.Until(c.connectedAt.Add(g.maxAge)))
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		typ, data, err := c.ws.Read(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		if err != nil {
			if why := c.closing.Load(); why != nil {
				return 1000, *why
			}
			if timedOut {
				return 1001, "Going away"
			}
			if st := websocket.CloseStatus(err); st != -1 {
				return int64(st), fmt.Sprintf("Client-side close frame status code '%d'", st)
			}
			return 1006, "Connection closed abnormally"
		}
		now := time.Now()
		c.lastActive.Store(now.UnixMilli())
		ev := g.event(c, nil, g.route(typ, data), "MESSAGE", now)
		ev.RequestContext.MessageID = shop.NewID("msg_")
		if typ == websocket.MessageBinary {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(data), true
		} else {
			ev.Body = string(data)
		}
		resp, err := g.invoke(ev)
		body := resp.Body
		if err != nil {
			// What API Gateway sends when the integration fails.
			g.log.Error("ws message", "connection_id", c.id, "err", err.Error())
			b, _ := json.Marshal(map[string]string{"message": "Internal server error", "connectionId": c.id, "requestId": ev.RequestContext.RequestID})
			body = string(b)
		}
		if body != "" {
			if err := g.write(c, []byte(body)); err != nil {
				return 1006, "Connection closed abnormally"
			}
		}
	}
}

// route is API Gateway's route selection on $request.body.action.
func (g *wsGateway) route(typ websocket.MessageType, data []byte) string {
	if typ != websocket.MessageText {
		return handler.RouteWSDefault
	}
	var m struct {
		Action any `json:"action"`
	}
	if json.Unmarshal(data, &m) != nil {
		return handler.RouteWSDefault
	}
	if a, ok := m.Action.(string); ok && g.routes[a] {
		return a
	}
	return handler.RouteWSDefault
}

func (g *wsGateway) write(c *wsConn, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), wsPostTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, data)
}

func (g *wsGateway) disconnect(c *wsConn, code int64, reason string) {
	ev := g.event(c, nil, handler.RouteWSDisconnect, "DISCONNECT", time.Now())
	ev.RequestContext.DisconnectStatusCode, ev.RequestContext.DisconnectReason = code, &reason
	if _, err := g.invoke(ev); err != nil {
		g.log.Error("ws disconnect", "connection_id", c.id, "err", err.Error())
	}
}

func (g *wsGateway) get(id string) *wsConn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns[id]
}

// closeAll closes every connection (the runner is stopping).
func (g *wsGateway) closeAll() {
	g.mu.Lock()
	conns := make([]*wsConn, 0, len(g.conns))
	for _, c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		why := "Going away"
		c.closing.Store(&why)
		c.ws.Close(websocket.StatusGoingAway, "") //nolint:errcheck
	}
}

// manage is the management API: POST (send), GET (describe), DELETE (close) /@connections/{id}.
// An id that is not open answers 410 GoneException, as API Gateway does.
func (g *wsGateway) manage(w http.ResponseWriter, r *http.Request) {
	c := g.get(r.PathValue("id"))
	if c == nil {
		mgmtError(w, http.StatusGone, "GoneException", "")
		return
	}
	switch r.Method {
	case http.MethodPost:
		data, err := io.ReadAll(io.LimitReader(r.Body, wsMaxFrame+1))
		if err != nil {
			mgmtError(w, http.StatusBadRequest, "BadRequestException", "could not read the body")
			return
		}
		if len(data) > wsMaxFrame {
			mgmtError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException", "Message too long")
			return
		}
		if err := g.write(c, data); err != nil {
			c.ws.CloseNow() //nolint:errcheck // the read loop ends and $disconnect follows
			mgmtError(w, http.StatusGone, "GoneException", "")
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		b, _ := json.Marshal(map[string]any{
			"connectedAt":  c.connectedAt.UTC().Format(time.RFC3339Nano),
			"lastActiveAt": time.UnixMilli(c.lastActive.Load()).UTC().Format(time.RFC3339Nano),
			"identity":     map[string]string{"sourceIp": c.sourceIP, "userAgent": c.userAgent},
		})
		w.Header().Set("Content-Type", "application/json")
		w.Write(b) //nolint:errcheck
	case http.MethodDelete:
		why := "Deleted by the management API"
		c.closing.Store(&why)
		go c.ws.Close(websocket.StatusNormalClosure, "") //nolint:errcheck
		w.WriteHeader(http.StatusNoContent)
	default:
		mgmtError(w, http.StatusMethodNotAllowed, "MethodNotAllowedException", r.Method+" is not allowed")
	}
}

// mgmtError answers as the management API does: the error type in x-amzn-ErrorType.
func mgmtError(w http.ResponseWriter, status int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-ErrorType", errType)
	w.WriteHeader(status)
	var m any
	if msg != "" {
		m = msg
	}
	b, _ := json.Marshal(map[string]any{"message": m})
	w.Write(b) //nolint:errcheck
}
