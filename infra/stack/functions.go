package stack

import (
	"fmt"
	"sort"
	"strings"
)

// Function describes one Lambda function of functions/<Name>: how it runs and what it may touch.
// The IAM grants follow from these fields and nothing else, so the table below is the whole
// least-privilege story of the stack.
type Function struct {
	// Name is the directory under functions/ and the suffix of the deployed function name.
	Name string
	// Description is the function's one-line purpose.
	Description string
	// MemoryMB is the memory size; on arm64 CPU share grows with it.
	MemoryMB int
	// TimeoutSeconds is the function timeout.
	TimeoutSeconds int
	// Postgres: the function connects to Postgres, through the RDS Proxy, as the application
	// role (DATABASE_SECRET_ARN, DATABASE_HOST); its reserved concurrency counts in the budget.
	Postgres bool
	// Owner: the function connects as the tables' owner (the RDS master secret) and reads the
	// application role's secret: the migrate function only.
	Owner bool
	// DBMaxConns is DB_MAX_CONNS, the pool size: one Lambda environment serves one event at a
	// time, so 1; the two scheduled jobs (expire, janitor) get 2, a margin in case a step ever
	// holds a connection while it takes another (their lock is a lease row, not a session),
	// which costs 2 connections of the budget.
	DBMaxConns int
	// Stripe: the function reads the API key's secret, STRIPE_SECRET_ARN (config.NeedStripe in
	// its main.go).
	Stripe bool
	// StripeWebhook: the function reads the webhook signing secret's own secret,
	// STRIPE_WEBHOOK_SECRET_ARN (config.NeedStripeWebhook): the webhook function only.
	StripeWebhook bool
	// SendFulfill: the function sends jobs to the fulfill-order queue.
	SendFulfill bool
	// ConsumeFulfillDLQ: the function receives and deletes dead-lettered jobs (retry, cancel, redrive).
	ConsumeFulfillDLQ bool
	// SendStockUpdates: the function changes available units and tells the stock-updates queue.
	SendStockUpdates bool
	// ManageConnections: the function posts to WebSocket connections (the management API).
	ManageConnections bool
	// VerifyTokens: the function checks Cognito tokens itself (JWT_ISSUER, JWT_CLIENT_ID): the
	// WebSocket $connect's optional ?token=.
	VerifyTokens bool
	// AsyncRetries is the retry count of asynchronous (EventBridge) invocations; -1 leaves the default.
	AsyncRetries int
	// Scheduled: an EventBridge schedule invokes the function (asynchronously); a run that
	// failed after AsyncRetries goes to the schedule-failures queue (Queues.ScheduleFailures).
	Scheduled bool
}

// Functions is every function the stack deploys, in the order of DESIGN.md's flows.
var Functions = []Function{
	{Name: "reserve", Description: "products and the shopper's holds (HTTP API)", MemoryMB: 512, TimeoutSeconds: 10, Postgres: true, DBMaxConns: 1,
		SendStockUpdates: true, AsyncRetries: -1},
	{Name: "checkout", Description: "checkout and orders (HTTP API)", MemoryMB: 512, TimeoutSeconds: 15, Postgres: true, DBMaxConns: 1,
		Stripe: true, SendStockUpdates: true, AsyncRetries: -1},
	{Name: "webhook", Description: "verified Stripe events into orders and fulfillment jobs", MemoryMB: 256, TimeoutSeconds: 15, Postgres: true, DBMaxConns: 1,
		Stripe: true, StripeWebhook: true, SendFulfill: true, SendStockUpdates: true, AsyncRetries: -1},
	{Name: "fulfill", Description: "fulfillment worker on the fulfill-order queue", MemoryMB: 256, TimeoutSeconds: 30, Postgres: true, DBMaxConns: 1,
		SendStockUpdates: true, AsyncRetries: -1},
	{Name: "admin", Description: "product ledger, restocking, orders and failed jobs (HTTP API, admin group)", MemoryMB: 256, TimeoutSeconds: 29, Postgres: true, DBMaxConns: 1,
		Stripe: true, SendFulfill: true, ConsumeFulfillDLQ: true, SendStockUpdates: true, AsyncRetries: -1},
	{Name: "expire", Description: "expiry sweep, every minute", MemoryMB: 256, TimeoutSeconds: 55, Postgres: true, DBMaxConns: 2,
		Stripe: true, SendStockUpdates: true, AsyncRetries: 0, Scheduled: true},
	{Name: "janitor", Description: "daily clean-up of failed jobs older than FAILED_JOB_MAX_AGE", MemoryMB: 256, TimeoutSeconds: 300, Postgres: true, DBMaxConns: 2,
		Stripe: true, ConsumeFulfillDLQ: true, SendStockUpdates: true, AsyncRetries: 2, Scheduled: true},
	{Name: "wsconnect", Description: "WebSocket $connect, $disconnect, subscribe, unsubscribe, $default", MemoryMB: 256, TimeoutSeconds: 10,
		VerifyTokens: true, AsyncRetries: -1},
	{Name: "broadcast", Description: "stock-updates fan-out to the viewers of each product", MemoryMB: 256, TimeoutSeconds: 10,
		ManageConnections: true, AsyncRetries: -1},
	{Name: "migrate", Description: "migrations and the application role, once per deploy (the stack's trigger)", MemoryMB: 256, TimeoutSeconds: 300,
		Postgres: true, Owner: true, DBMaxConns: 1, AsyncRetries: 0},
}

// FunctionNames returns the names of Functions, sorted.
func FunctionNames() []string {
	names := make([]string, 0, len(Functions))
	for _, f := range Functions {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	return names
}

// lookup returns the function of that name or panics: the route tables name functions.
func lookup(name string) Function {
	for _, f := range Functions {
		if f.Name == name {
			return f
		}
	}
	panic(fmt.Sprintf("no function %q", name))
}

// Access is who may call an HTTP route.
type Access int

// Accesses, as in shared/apigw.
const (
	Public  Access = iota // no token
	Shopper               // a valid Cognito token
	Admin                 // a valid Cognito token; the function also requires the admin group
)

// HTTPRoute is one route of the HTTP API.
type HTTPRoute struct {
	// Key is the API Gateway route key, "METHOD /path", as in shared/handler's Route* constants.
	Key string
	// Function serves the route.
	Function string
	// Access says whether the JWT authorizer guards the route.
	Access Access
}

// Method is the route key's method.
func (r HTTPRoute) Method() string { m, _, _ := strings.Cut(r.Key, " "); return m }

// Path is the route key's path.
func (r HTTPRoute) Path() string { _, p, _ := strings.Cut(r.Key, " "); return p }

// HTTPRoutes is the HTTP API of API.md. DefaultRouteFunction answers every other request
// with API.md's 404 error shape.
var HTTPRoutes = []HTTPRoute{
	{"GET /products", "reserve", Public},
	{"GET /products/{id}", "reserve", Public},
	{"POST /reservations", "reserve", Shopper},
	{"GET /reservations", "reserve", Shopper},
	{"DELETE /reservations/{id}", "reserve", Shopper},
	{"POST /products/{id}/queue", "reserve", Shopper},
	{"GET /products/{id}/queue", "reserve", Shopper},
	{"POST /products/{id}/entry", "reserve", Shopper},
	{"GET /products/{id}/entry", "reserve", Shopper},
	{"DELETE /products/{id}/entry", "reserve", Shopper},
	{"GET /products/{id}/draw", "reserve", Public},
	{"POST /checkout", "checkout", Shopper},
	{"GET /orders/{id}", "checkout", Shopper},
	{"POST /webhooks/stripe", "webhook", Public},
	{"GET /admin/products", "admin", Admin},
	{"PUT /admin/products/{id}", "admin", Admin},
	{"POST /admin/products/{id}/restock", "admin", Admin},
	{"POST /admin/products/{id}/draw-beacon", "admin", Admin},
	{"GET /admin/failed-jobs", "admin", Admin},
	{"POST /admin/failed-jobs/{order_id}/retry", "admin", Admin},
	{"POST /admin/failed-jobs/{order_id}/cancel", "admin", Admin},
	{"POST /admin/failed-jobs/redrive", "admin", Admin},
	{"GET /admin/orders", "admin", Admin},
}

// DefaultRouteFunction serves the HTTP API's $default route (unknown routes: 404 in API.md's shape).
const DefaultRouteFunction = "reserve"

// WebSocketRoute is one route of the WebSocket API.
type WebSocketRoute struct {
	// Key is the route key: $connect, $disconnect, $default or a message's action.
	Key string
	// Function serves the route.
	Function string
	// TwoWay routes send the function's response body back to the client (a route response).
	TwoWay bool
}

// WebSocketRoutes is the WebSocket API (route selection $request.body.action), as in
// shared/handler's WSRoutes: subscribe answers the current value at once, bad messages an error.
var WebSocketRoutes = []WebSocketRoute{
	{"$connect", "wsconnect", false},
	{"$disconnect", "wsconnect", false},
	{"$default", "wsconnect", true},
	{"subscribe", "wsconnect", true},
	{"unsubscribe", "wsconnect", true},
}
