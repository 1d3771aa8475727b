package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/apigw"
	"lastunit/shared/shop"
	"lastunit/web"
)

// lambdaFunc is an HTTP API function as Lambda would invoke it.
type lambdaFunc func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// route is one HTTP API route: what API Gateway would match and which function it invokes.
type route struct {
	method, path string
	key          string
	access       apigw.Access
	fn           lambdaFunc
}

// server is the local runner's HTTP side: API Gateway's routing and JWT authorizer in front
// of the unchanged function handlers, plus the runner-only routes.
type server struct {
	log    *slog.Logger
	secret []byte
	routes []route
	health func(context.Context) error
	mux    *http.ServeMux
	tokens tokenCache
	oidc   *oidcProvider   // the runner's OpenID provider (oidc.go); nil: HS256 tokens only
	hosts  map[string]bool // the Host names served (lower case, no port, no brackets)
	limits limits
	pages  web.Config // what the pages are told; it decides whether Stripe's origins are allowed
	// headers are the security headers per Host (as sent, at most maxHeaderHosts of them),
	// computed once: servePages empties it.
	headers struct {
		sync.RWMutex
		byHost map[string][]headerValue
	}
}

// headerValue is one response header, its key canonical and its value a slice of
// capacity one, which w.Header() may share between requests (Add appends to a copy).
type headerValue struct {
	key string
	val []string
}

// maxHeaderHosts bounds the headers cache: the allowed names times the ports they come on.
// Past it, a new Host's headers are computed on every request, as before the cache.
const maxHeaderHosts = 64

// limits bound what one client can hold: a connection is closed when its headers, or its
// request's body, take longer than their timeout, or when it sits idle between requests.
type limits struct {
	header, body, idle time.Duration
	maxHeaderBytes     int
}

// defaultLimits: API Gateway's HTTP API takes at most 10 KiB of request line and headers;
// the runner allows 32 KiB because browsers send every cookie set on localhost.
var defaultLimits = limits{header: 10 * time.Second, body: 20 * time.Second, idle: 60 * time.Second, maxHeaderBytes: 32 << 10}

// configure applies the runner's limits to hs. The body timeout is not hs.ReadTimeout: that
// deadline stays on the connection while the handler runs and, when it passes, cancels the
// request's context; ServeHTTP sets it per request and readBody lifts it once the body is in.
func (s *server) configure(hs *http.Server) *http.Server {
	hs.Handler = s
	hs.ReadHeaderTimeout = s.limits.header
	hs.IdleTimeout = s.limits.idle
	hs.MaxHeaderBytes = s.limits.maxHeaderBytes
	return hs
}

// LoopbackHosts are the host names the runner answers by default: a page on any other
// origin that resolves to 127.0.0.1 (DNS rebinding) is refused before any route runs.
var LoopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// allowHosts sets the Host names the runner answers (any port) to the loopback names plus
// the comma-separated list (LOCAL_ALLOWED_HOSTS), e.g. "shop.test,192.168.1.20".
func (s *server) allowHosts(list string) {
	s.hosts = map[string]bool{}
	for _, h := range append(LoopbackHosts, strings.Split(list, ",")...) {
		if h = strings.Trim(strings.ToLower(strings.TrimSpace(h)), "[]"); h != "" {
			s.hosts[h] = true
		}
	}
}

// hostAllowed reports whether a request's Host header names this runner.
func (s *server) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	} else if strings.Contains(hostport, ":") {
		return false // neither host:port nor a bracketed address
	}
	return host != "" && s.hosts[strings.ToLower(host)]
}

func newServer(log *slog.Logger, secret []byte, health func(context.Context) error, funcs ...*apigw.Mux) *server {
	s := &server{log: log, secret: secret, health: health, mux: http.NewServeMux(), limits: defaultLimits}
	s.allowHosts("")
	for _, f := range funcs {
		for key, access := range f.Routes() {
			method, path, _ := strings.Cut(key, " ")
			s.routes = append(s.routes, route{method: method, path: path, key: key, access: access, fn: f.Serve})
		}
	}
	sort.Slice(s.routes, func(i, j int) bool { return s.routes[i].key < s.routes[j].key })
	s.handle("GET /healthz", s.healthz)
	s.handle("POST /_local/token", s.token)
	s.mux.HandleFunc("/", s.api)
	return s
}

// handle registers a runner-only route; other methods on its path get 405 in the error shape.
func (s *server) handle(pattern string, h http.HandlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeMethodNotAllowed, "%s is not allowed on %s", r.Method, path)))
			return
		}
		h(w, r)
	})
}

// ServeHTTP refuses a Host it does not serve, then routes.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		for k, v := range web.SecurityHeaders(s.pages) {
			w.Header().Set(k, v)
		}
		apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeForbidden, "this runner does not serve that host name; see LOCAL_ALLOWED_HOSTS")))
		return
	}
	// The same headers the deployed pages get, with the runner's own WebSocket origin
	// (the Host is one of ours by now).
	h := w.Header()
	for _, kv := range s.securityHeaders(r.Host) {
		h[kv.key] = kv.val
	}
	// The request's body must arrive within limits.body; handlers that read it whole lift
	// the deadline (readBody) so it cannot cancel their work; net/http lifts it when /ws
	// takes the connection over.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.limits.body)) //nolint:errcheck
	s.mux.ServeHTTP(w, r)
}

// securityHeaders are web.SecurityHeaders for the pages on host, from the cache when it has
// them.
func (s *server) securityHeaders(host string) []headerValue {
	s.headers.RLock()
	hv, ok := s.headers.byHost[host]
	s.headers.RUnlock()
	if ok {
		return hv
	}
	for k, v := range web.SecurityHeaders(s.pages, s.connectOrigins(host)...) {
		hv = append(hv, headerValue{key: http.CanonicalHeaderKey(k), val: []string{v}[:1:1]})
	}
	s.headers.Lock()
	defer s.headers.Unlock()
	if s.headers.byHost == nil {
		s.headers.byHost = map[string][]headerValue{}
	}
	if len(s.headers.byHost) < maxHeaderHosts {
		s.headers.byHost[host] = hv
	}
	return hv
}

// connectOrigins are the origins the pages may connect to besides their own: the runner's
// WebSocket at host (ws: and wss:), and the API and WebSocket URLs the pages are given.
func (s *server) connectOrigins(host string) []string {
	out := []string{"ws://" + host, "wss://" + host}
	for _, u := range []string{s.pages.APIBase, s.pages.WebSocketURL} {
		if u != "" {
			out = append(out, u)
		}
	}
	return out
}

// readBody reads a request body up to apigw.MaxBody+1 bytes. Once the whole body has been
// read it lifts the read deadline ServeHTTP set, so a slow handler's context is not cancelled
// by it; a body cut short by the deadline is an error.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, apigw.MaxBody+1))
	if err == nil && len(body) <= apigw.MaxBody {
		http.NewResponseController(w).SetReadDeadline(time.Time{}) //nolint:errcheck
	}
	return body, err
}

// identity checks a runner-only route's bearer token as the HTTP API's authorizer would
// check a protected route's, and returns who it names.
func (s *server) identity(r *http.Request) (apigw.Identity, error) {
	c, err := s.checkToken(r.Header.Get("Authorization"), apigw.Shopper, time.Now())
	if err != nil {
		return apigw.Identity{}, shop.Errorf(shop.CodeUnauthenticated, "missing, malformed, expired or badly signed token")
	}
	if !shop.ValidText(c["sub"]) {
		return apigw.Identity{}, shop.Invalid("sub", "the token's sub must not contain control characters")
	}
	return apigw.Identity{UserID: c["sub"], Groups: apigw.ParseGroups(c["cognito:groups"])}, nil
}

// api routes a request to its function as API Gateway would: 404 for an unknown path, 405 for
// a known path with another method, 401 when a protected route has no valid token.
func (s *server) api(w http.ResponseWriter, r *http.Request) {
	var match *route
	var params map[string]string
	pathKnown := false
	for i := range s.routes {
		p, ok := apigw.MatchPath(s.routes[i].path, r.URL.Path)
		if !ok {
			continue
		}
		pathKnown = true
		if s.routes[i].method == r.Method {
			match, params = &s.routes[i], p
			break
		}
	}
	switch {
	case match == nil && pathKnown:
		apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path)))
		return
	case match == nil:
		apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeNotFound, "no route %s %s", r.Method, r.URL.Path)))
		return
	}
	var claims map[string]string
	if match.access != apigw.Public {
		c, err := s.checkToken(r.Header.Get("Authorization"), match.access, time.Now())
		if err != nil {
			apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeUnauthenticated, "missing, malformed, expired or badly signed token")))
			return
		}
		claims = c
	}
	body, err := readBody(w, r)
	if err != nil {
		w.Header().Set("Connection", "close")
		apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Invalid("", "could not read the body")))
		return
	}
	ev := apigw.FromHTTP(r, match.key, params, claims, body, shop.NewID("req_"))
	resp, err := match.fn(r.Context(), ev)
	if err != nil {
		resp = apigw.ErrorResponse(err)
	}
	apigw.WriteHTTP(w, resp)
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.health(ctx); err != nil {
		s.log.Warn("healthz", "err", err.Error())
		apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeUnavailable, "not ready")))
		return
	}
	apigw.WriteHTTP(w, apigw.JSON(http.StatusOK, map[string]string{"status": "ok"}))
}

// tokenRequest is the body of POST /_local/token.
type tokenRequest struct {
	Sub    string   `json:"sub"`
	Groups []string `json:"groups"`
	TTL    string   `json:"ttl"`
}

// decodeRequest reads a runner-only route's JSON body into v with the API's rules; on a bad
// body it answers the error and returns false.
func decodeRequest(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := readBody(w, r)
	if err != nil {
		w.Header().Set("Connection", "close")
		apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Invalid("", "could not read the body")))
		return false
	}
	if err := apigw.DecodeJSON(r.Header.Get("Content-Type"), body, v); err != nil {
		apigw.WriteHTTP(w, apigw.ErrorResponse(err))
		return false
	}
	return true
}

func (s *server) token(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if !decodeRequest(w, r, &req) {
		return
	}
	if req.Sub == "" || len(req.Sub) > 128 || !shop.ValidText(req.Sub) {
		apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Invalid("sub", "sub must be 1 to 128 characters, none of them a control character")))
		return
	}
	for _, g := range req.Groups {
		if !validGroup(g) {
			apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Invalid("groups", "each group must be 1 to 128 characters without whitespace, as Cognito's")))
			return
		}
	}
	ttl := time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > 7*24*time.Hour {
			apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Invalid("ttl", "ttl must be a Go duration from 1s to 168h")))
			return
		}
		ttl = d
	}
	tok, err := mintToken(s.secret, req.Sub, req.Groups, ttl, time.Now())
	if err != nil {
		apigw.WriteHTTP(w, apigw.ErrorResponse(err))
		return
	}
	b, _ := json.Marshal(map[string]string{"token": tok})
	w.Header().Set("Content-Type", "application/json")
	w.Write(b) //nolint:errcheck
}
