// Package apigw adapts API Gateway HTTP API (payload 2.0) events to the shop: it routes by
// route key, checks identity from the JWT authorizer's claims, decodes JSON bodies strictly,
// and answers with API.md's error shape and status table. Internals are logged, never sent.
package apigw

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/shop"
)

// MaxBody is the largest request body accepted (64 KiB); larger is 413.
const MaxBody = 64 << 10

// Status maps each error code of API.md's table to its HTTP status.
var Status = map[shop.Code]int{
	shop.CodeInvalidRequest:       http.StatusBadRequest,
	shop.CodeUnauthenticated:      http.StatusUnauthorized,
	shop.CodeForbidden:            http.StatusForbidden,
	shop.CodeNotFound:             http.StatusNotFound,
	shop.CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	shop.CodeOutOfStock:           http.StatusConflict,
	shop.CodeLimitExceeded:        http.StatusConflict,
	shop.CodeReservationExpired:   http.StatusConflict,
	shop.CodeInvalidState:         http.StatusConflict,
	shop.CodeIdempotencyConflict:  http.StatusConflict,
	shop.CodePayloadTooLarge:      http.StatusRequestEntityTooLarge,
	shop.CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	shop.CodeRateLimited:          http.StatusTooManyRequests,
	shop.CodeNotOpen:              http.StatusConflict,
	shop.CodeNotAdmitted:          http.StatusConflict,
	shop.CodePaymentProviderError: http.StatusBadGateway,
	shop.CodeUnavailable:          http.StatusServiceUnavailable,
	shop.CodeInternal:             http.StatusInternalServerError,
}

// Access is who may call a route.
type Access int

// Route access levels.
const (
	Public  Access = iota // no token needed
	Shopper               // any authenticated user
	Admin                 // users in the admin group
)

// Request is one decoded HTTP API call.
type Request struct {
	Event events.APIGatewayV2HTTPRequest
	User  Identity // zero for public routes without a token
}

// Param returns a path parameter.
func (r *Request) Param(name string) string { return r.Event.PathParameters[name] }

// Header returns a request header, case-insensitively.
func (r *Request) Header(name string) string { return Header(r.Event.Headers, name) }

// Header returns a header from an API Gateway header map, case-insensitively.
func Header(h map[string]string, name string) string {
	if v, ok := h[strings.ToLower(name)]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// HandlerFunc serves one route: it returns the status and the value to send as JSON (nil for
// no body), or an error that becomes API.md's error shape.
type HandlerFunc func(ctx context.Context, r *Request) (int, any, error)

// Mux dispatches HTTP API events by route key ("POST /reservations").
type Mux struct {
	Log    *slog.Logger
	routes map[string]entry
}

type entry struct {
	access Access
	fn     HandlerFunc
}

// NewMux returns an empty Mux that logs to log.
func NewMux(log *slog.Logger) *Mux { return &Mux{Log: log, routes: map[string]entry{}} }

// Handle registers fn for a route key such as "GET /products/{id}".
func (m *Mux) Handle(routeKey string, access Access, fn HandlerFunc) {
	m.routes[routeKey] = entry{access, fn}
}

// Routes returns the registered route keys with who may call each.
func (m *Mux) Routes() map[string]Access {
	out := make(map[string]Access, len(m.routes))
	for k, e := range m.routes {
		out[k] = e.access
	}
	return out
}

// Serve is the Lambda handler: it never returns an error, only responses.
func (m *Mux) Serve(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	start := time.Now()
	req := &Request{Event: ev}
	status, body, err := m.dispatch(ctx, req)
	var resp events.APIGatewayV2HTTPResponse
	// Typed attributes, not key-value pairs: no boxing of each value per request.
	attrs := make([]slog.Attr, 0, 7)
	attrs = append(attrs, slog.String("route", ev.RouteKey), slog.String("request_id", ev.RequestContext.RequestID), slog.String("user", req.User.UserID))
	if err != nil {
		resp = ErrorResponse(err)
		attrs = append(attrs, slog.Int("status", resp.StatusCode), slog.String("code", string(shop.ErrorCode(err))))
		if resp.StatusCode >= 500 {
			attrs = append(attrs, slog.String("err", err.Error()))
		}
	} else if raw, ok := body.(Raw); ok {
		resp = events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: raw.Headers, Body: raw.Body}
		attrs = append(attrs, slog.Int("status", status))
	} else {
		resp = JSON(status, body)
		attrs = append(attrs, slog.Int("status", status))
	}
	attrs = append(attrs, slog.Float64("ms", float64(time.Since(start).Microseconds())/1000))
	level := slog.LevelInfo
	if resp.StatusCode >= 500 {
		level = slog.LevelError
	}
	m.Log.LogAttrs(ctx, level, "request", attrs...)
	return resp, nil
}

func (m *Mux) dispatch(ctx context.Context, req *Request) (status int, body any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	e, ok := m.routes[req.Event.RouteKey]
	if !ok {
		return 0, nil, shop.Errorf(shop.CodeNotFound, "no route %s %s", req.Event.RequestContext.HTTP.Method, req.Event.RawPath)
	}
	if e.access != Public {
		id, err := IdentityOf(req.Event)
		if err != nil {
			return 0, nil, err
		}
		req.User = id
	}
	if e.access == Admin && !req.User.IsAdmin() {
		return 0, nil, shop.Errorf(shop.CodeForbidden, "this route needs the admin group")
	}
	return e.fn(ctx, req)
}

// Raw is a handler's answer that is not JSON (a CSV download): its headers, Content-Type
// among them, and its body as they are.
type Raw struct {
	Headers map[string]string
	Body    string
}

// JSON answers status with v encoded as JSON (no body when v is nil).
func JSON(status int, v any) events.APIGatewayV2HTTPResponse {
	resp := events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{"Content-Type": "application/json"}}
	if v == nil {
		resp.Headers = nil
		return resp
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ErrorResponse(fmt.Errorf("encode response: %w", err))
	}
	resp.Body = string(b)
	return resp
}

// ErrorBody is API.md's error shape.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    shop.Code      `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// ErrorResponse maps err to API.md's status and error shape. Only a *shop.Error's own
// message and details reach the client; anything else is a generic message.
func ErrorResponse(err error) events.APIGatewayV2HTTPResponse {
	d := ErrorDetail{Code: shop.ErrorCode(err)}
	switch e := shop.AsError(err); {
	case e != nil:
		d.Message, d.Details = e.Message, e.Details
	case d.Code == shop.CodeUnavailable:
		d.Message = "a dependency is unavailable; nothing was changed, try again"
	case d.Code == shop.CodeNotFound:
		d.Message = "not found"
	default:
		d.Message = "internal error"
	}
	status, ok := Status[d.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	b, _ := json.Marshal(ErrorBody{Error: d})
	h := map[string]string{"Content-Type": "application/json"}
	if secs, ok := d.Details["retry_after"].(int64); ok && d.Code == shop.CodeRateLimited {
		h["Retry-After"] = strconv.FormatInt(secs, 10)
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: h, Body: string(b)}
}

// Body returns the request body, decoded from base64 when API Gateway encoded it.
func Body(ev events.APIGatewayV2HTTPRequest) ([]byte, error) {
	if !ev.IsBase64Encoded {
		return []byte(ev.Body), nil
	}
	b, err := base64.StdEncoding.DecodeString(ev.Body)
	if err != nil {
		return nil, shop.Invalid("", "the body is not valid base64")
	}
	return b, nil
}

// Decode reads a JSON body into v strictly: JSON content type, at most MaxBody bytes, no
// unknown fields, right types, nothing after the value. An empty body decodes as {}.
func Decode(r *Request, v any) error {
	b, err := Body(r.Event)
	if err != nil {
		return err
	}
	return DecodeJSON(r.Header("Content-Type"), b, v)
}

// DecodeJSON is Decode on a content type and raw body.
func DecodeJSON(contentType string, b []byte, v any) error {
	if len(b) > MaxBody {
		return shop.Errorf(shop.CodePayloadTooLarge, "the body is over %d bytes", MaxBody)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		b = []byte("{}")
	} else if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != "application/json" {
		return shop.Errorf(shop.CodeUnsupportedMediaType, "send the body as application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return shop.Invalid("", "the body has data after the JSON value")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return shop.Invalid("", "the body has data after the JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return shop.Invalid("", "the body must be a JSON object")
		}
		return shop.Invalid(field, "%s must be of type %s", field, te.Type.String())
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return shop.Invalid("", "malformed JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if len(field) > 64 {
			field = field[:64]
		}
		return shop.Invalid(field, "unknown field (named in details.field)")
	default:
		return shop.Invalid("", "malformed JSON")
	}
}
