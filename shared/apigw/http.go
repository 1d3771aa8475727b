package apigw

import (
	"encoding/base64"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// MatchPath matches a URL path against a route path such as "/products/{id}" and returns
// the path parameters. Each {name} matches one non-empty segment. It allocates only the
// parameters of a match (the runner tries every route on every request).
func MatchPath(pattern, path string) (map[string]string, bool) {
	n, ok := matchSegments(pattern, path, nil)
	if !ok || n == 0 {
		return nil, ok
	}
	params := make(map[string]string, n)
	matchSegments(pattern, path, params)
	return params, true
}

// matchSegments walks pattern and path segment by segment (split at "/"), reports whether
// they match and how many {name} segments the pattern has, and binds them in params when it
// is not nil.
func matchSegments(pattern, path string, params map[string]string) (int, bool) {
	n := 0
	for {
		p, prest, pmore := strings.Cut(pattern, "/")
		x, xrest, xmore := strings.Cut(path, "/")
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if x == "" {
				return 0, false
			}
			n++
			if params != nil {
				params[p[1:len(p)-1]] = x
			}
		} else if p != x {
			return 0, false
		}
		if pmore != xmore {
			return 0, false // not as many segments
		}
		if !pmore {
			return n, true
		}
		pattern, path = prest, xrest
	}
}

// FromHTTP builds the event that API Gateway's HTTP API (payload 2.0) sends a function for
// r, matched to routeKey with its path parameters, authorized with claims (nil for a public
// route). body is the request body as read.
func FromHTTP(r *http.Request, routeKey string, params, claims map[string]string, body []byte, requestID string) events.APIGatewayV2HTTPRequest {
	now := time.Now().UTC()
	headers := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		if strings.EqualFold(k, "Cookie") {
			continue
		}
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	if r.Host != "" {
		headers["host"] = r.Host
	}
	var query map[string]string
	if q := r.URL.Query(); len(q) > 0 {
		query = make(map[string]string, len(q))
		for k, v := range q {
			query[k] = strings.Join(v, ",")
		}
	}
	var cookies []string
	for _, c := range r.Cookies() {
		cookies = append(cookies, c.String())
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              routeKey,
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		PathParameters:        params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:   routeKey,
			AccountID:  "000000000000",
			Stage:      "$default",
			RequestID:  requestID,
			APIID:      "local",
			DomainName: r.Host,
			Time:       now.Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:  now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: ip, UserAgent: r.UserAgent(),
			},
		},
	}
	if claims != nil {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: claims},
		}
	}
	if utf8.Valid(body) {
		ev.Body = string(body)
	} else {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	return ev
}

// WriteHTTP writes a function's response as API Gateway would.
func WriteHTTP(w http.ResponseWriter, resp events.APIGatewayV2HTTPResponse) {
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if b, err := base64.StdEncoding.DecodeString(resp.Body); err == nil {
			body = b
		}
	}
	if len(body) > 0 {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(body) //nolint:errcheck
}
