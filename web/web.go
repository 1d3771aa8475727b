// Package web holds the storefront (index.html) and the admin dashboard (dashboard.html):
// static pages with a little JavaScript and no external scripts, embedded in the local runner
// and deployable as they are to S3/CloudFront. They read /config.json for their settings.
package web

import "embed"

// FS is the pages and their assets (assets/...).
//
//go:embed index.html dashboard.html assets
var FS embed.FS

// API is the API reference: api/openapi.yaml (the HTTP contract, OpenAPI 3.1),
// api/asyncapi.yaml (the WebSocket messages, AsyncAPI 3), and the pages rendered from them,
// api/index.html and api/design.html (see api/render).
//
//go:embed api/openapi.yaml api/asyncapi.yaml api/index.html api/design.html
var API embed.FS

// Config is what /config.json tells the pages.
type Config struct {
	// Local is true under the local runner: sign-in mints dev tokens and "Pay (test)" shows.
	Local bool `json:"local"`
	// StripePublishableKey, when set, makes checkout use Stripe's Payment Element.
	StripePublishableKey string `json:"stripe_publishable_key"`
	// APIBase is the HTTP API's base URL ("" for the same origin).
	APIBase string `json:"api_base"`
	// WebSocketURL is the live stock endpoint ("" for ws(s)://same-origin/ws).
	WebSocketURL string `json:"websocket_url"`
}
