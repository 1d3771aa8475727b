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
	// Local is true under the local runner: "Pay (test)" shows.
	Local bool `json:"local"`
	// StripePublishableKey, when set, makes checkout use Stripe's Payment Element.
	StripePublishableKey string `json:"stripe_publishable_key"`
	// APIBase is the HTTP API's base URL ("" for the same origin).
	APIBase string `json:"api_base"`
	// WebSocketURL is the live stock endpoint ("" for ws(s)://same-origin/ws).
	WebSocketURL string `json:"websocket_url"`
	// Auth is how the storefront signs shoppers in; AdminAuth how the dashboard signs admins
	// in (in AWS another user pool: admins are not in the shoppers' self-sign-up pool).
	Auth      *AuthConfig `json:"auth"`
	AdminAuth *AuthConfig `json:"admin_auth"`
}

// AuthConfig is an OAuth 2.0 public client signing in with the authorization code flow and
// PKCE (S256): Cognito's managed login in AWS, the runner's OpenID provider locally. URLs may
// be relative to the pages' origin (the runner's are).
type AuthConfig struct {
	// AuthorizeURL, TokenURL and LogoutURL are the provider's /oauth2/authorize,
	// /oauth2/token and /logout. Signing out revokes the refresh token at /oauth2/revoke
	// beside TokenURL, where Cognito and the runner's provider have it.
	AuthorizeURL string `json:"authorize_url"`
	TokenURL     string `json:"token_url"`
	LogoutURL    string `json:"logout_url"`
	// ClientID is the app client (the JWT audience of the routes the page calls).
	ClientID string `json:"client_id"`
	// RedirectURI is where the provider sends the browser back with the code (the page
	// itself); LogoutURI where it goes after signing out. Both are registered with the client.
	RedirectURI string `json:"redirect_uri"`
	LogoutURI   string `json:"logout_uri"`
	// Scope is the scopes asked for ("openid email profile").
	Scope string `json:"scope"`
}
