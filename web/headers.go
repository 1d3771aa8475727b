package web

import "strings"

// Stripe's origins, allowed only when Stripe.js is used (a publishable key is configured):
// its script, the frames of the Payment Element and its 3-D Secure pages, and its API.
const (
	stripeJS    = "https://js.stripe.com"
	stripeHooks = "https://hooks.stripe.com"
	stripeAPI   = "https://api.stripe.com"
)

// SecurityHeaders are the response headers every page, asset and API answer carries: a
// Content-Security-Policy that lets the pages load only their own files (no inline script or
// style, no framing by anyone: the dashboard can refund), talk only to their own origin and
// connect (the API and the WebSocket, e.g. "wss://shop.example"), and Stripe's origins only
// when cfg has a publishable key; plus nosniff, no referrer and no framing for older
// browsers. HSTS is not here: it only means something over HTTPS, where the CDN adds it.
func SecurityHeaders(cfg Config, connect ...string) map[string]string {
	script, frame, conn := []string{"'self'"}, []string{"'none'"}, append([]string{"'self'"}, connect...)
	if cfg.StripePublishableKey != "" {
		script = append(script, stripeJS)
		frame = []string{stripeJS, stripeHooks}
		conn = append(conn, stripeAPI)
	}
	csp := strings.Join([]string{
		"default-src 'self'",
		"script-src " + strings.Join(script, " "),
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src " + strings.Join(conn, " "),
		"frame-src " + strings.Join(frame, " "),
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
	return map[string]string{
		"Content-Security-Policy": csp,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
	}
}
