package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"

	"lastunit/shared/apigw"
	"lastunit/shared/handler"
	"lastunit/shared/shop"
	"lastunit/web"
)

// The contract check: every request the runner tests send and every answer they get is held
// against web/api/openapi.yaml, so the file cannot drift from the code.
//
// The rules:
//   - Every answer must be one the file declares for its route and status (body schema,
//     required headers, content type); an undeclared status is a violation.
//   - A request the file does not allow (a test sending an unknown field, a bad type, no token)
//     must be refused with a 4xx; a 2xx or 5xx answer to it is a violation.
//   - A route the file does not have is a violation unless it is answered 404 or 405 in the
//     error shape (the tests that probe unknown routes and wrong methods).
//   - /ws (the WebSocket upgrade) and /@connections/ (the runner's stand-in for API Gateway's
//     management API, which only the broadcaster's AWS SDK client calls) are not HTTP API
//     routes and pass unchecked; their messages are in web/api/asyncapi.yaml.

var contractDoc struct {
	once   sync.Once
	v      validator.Validator
	routes map[string]map[string]bool // path template -> upper-case methods
	err    error
}

// contractValidator builds the validator once per test binary from the embedded file.
func contractValidator(t testing.TB) validator.Validator {
	t.Helper()
	contractDoc.once.Do(func() {
		spec, err := fs.ReadFile(web.API, "api/openapi.yaml")
		if err != nil {
			contractDoc.err = err
			return
		}
		doc, err := libopenapi.NewDocument(spec)
		if err != nil {
			contractDoc.err = fmt.Errorf("parse web/api/openapi.yaml: %w", err)
			return
		}
		model, err := doc.BuildV3Model()
		if err != nil {
			contractDoc.err = fmt.Errorf("build model: %w", err)
			return
		}
		contractDoc.routes = map[string]map[string]bool{}
		for path, item := range model.Model.Paths.PathItems.FromOldest() {
			methods := map[string]bool{}
			for m := range item.GetOperations().KeysFromOldest() {
				methods[strings.ToUpper(m)] = true
			}
			contractDoc.routes[path] = methods
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			contractDoc.err = fmt.Errorf("build validator: %v", errs)
			return
		}
		contractDoc.v = v
	})
	if contractDoc.err != nil {
		t.Fatal(contractDoc.err)
	}
	return contractDoc.v
}

// contractChecker records where traffic leaves the file.
type contractChecker struct {
	v          validator.Validator
	routes     map[string]map[string]bool
	mu         sync.Mutex
	violations []string
	checked    int
}

func (c *contractChecker) add(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

// Violations returns what was recorded so far.
func (c *contractChecker) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.violations...)
}

// withContract wraps h so that its traffic is checked against the file, and fails t at
// cleanup with every violation seen.
func withContract(t testing.TB, h http.Handler) http.Handler {
	t.Helper()
	c := &contractChecker{v: contractValidator(t), routes: contractDoc.routes}
	t.Cleanup(func() {
		for _, v := range c.Violations() {
			t.Errorf("web/api/openapi.yaml: %s", v)
		}
	})
	return c.wrap(h)
}

// maxChecked bounds how much of a request body the checker keeps (the runner refuses
// anything over 64 KiB; tests send a little more to see the 413).
const maxChecked = 1 << 20

func (c *contractChecker) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" || strings.HasPrefix(r.URL.Path, "/@connections/") {
			h.ServeHTTP(w, r)
			return
		}
		reqBody, _ := io.ReadAll(io.LimitReader(r.Body, maxChecked))
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(reqBody), r.Body))
		rec := &teeWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		c.check(r, reqBody, rec)
	})
}

// teeWriter passes an answer through and keeps a copy of it.
type teeWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	header      http.Header
	body        bytes.Buffer
}

func (t *teeWriter) WriteHeader(code int) {
	if !t.wroteHeader {
		t.wroteHeader, t.status, t.header = true, code, t.ResponseWriter.Header().Clone()
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *teeWriter) Write(b []byte) (int, error) {
	if !t.wroteHeader {
		t.WriteHeader(http.StatusOK)
	}
	t.body.Write(b)
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (read deadlines, flushes).
func (t *teeWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

func (c *contractChecker) check(r *http.Request, reqBody []byte, rec *teeWriter) {
	c.mu.Lock()
	c.checked++
	c.mu.Unlock()
	header := rec.header
	if header == nil {
		header = rec.Header()
	}
	what := fmt.Sprintf("%s %s -> %d", r.Method, r.URL.RequestURI(), rec.status)
	req := r.Clone(r.Context())
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	if known := c.route(r.Method, r.URL.Path); !known {
		if (rec.status == http.StatusNotFound || rec.status == http.StatusMethodNotAllowed) && isErrorShape(rec.body.Bytes()) {
			return
		}
		c.add("%s: the route is not in the file", what)
		return
	}
	reqOK, reqErrs := c.v.ValidateHttpRequestSync(req)
	if !reqOK {
		if rec.status < 400 || rec.status >= 500 {
			c.add("%s: the file refuses this request (%s), yet the server answered %d", what, describe(reqErrs), rec.status)
		}
	}
	resp := &http.Response{
		StatusCode: rec.status,
		Header:     header,
		Body:       io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		Request:    req,
	}
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	if ok, errs := c.v.ValidateHttpResponse(req, resp); !ok {
		c.add("%s: the answer leaves the file (%s): %.300s", what, describe(errs), rec.body.Bytes())
	}
}

// route reports whether the file has an operation for method on path, segment by segment
// ("/products/" is not "/products"; a {param} matches one non-empty segment). HEAD is GET.
func (c *contractChecker) route(method, path string) bool {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	got := strings.Split(path, "/")
	for tmpl, methods := range c.routes {
		if !methods[method] {
			continue
		}
		want := strings.Split(tmpl, "/")
		if len(want) != len(got) {
			continue
		}
		match := true
		for i := range want {
			isParam := strings.HasPrefix(want[i], "{") && strings.HasSuffix(want[i], "}")
			if (isParam && got[i] == "") || (!isParam && want[i] != got[i]) {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// isErrorShape reports whether b is {"error": {"code": ..., "message": ...}}.
func isErrorShape(b []byte) bool {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	return json.Unmarshal(b, &e) == nil && e.Error.Code != "" && e.Error.Message != ""
}

func describe(errs []*verrors.ValidationError) string {
	var parts []string
	for _, e := range errs {
		s := e.Message
		if e.Reason != "" && e.Reason != e.Message {
			s += ": " + e.Reason
		}
		for _, f := range e.SchemaValidationErrors {
			s += fmt.Sprintf(" [%s %s]", f.FieldPath, f.Reason)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// TestContractCatchesAnswersThatLeaveTheFile: the check is not a rubber stamp. A handler whose
// answer or accepted request leaves the file is reported; exchanges the file allows are not.
func TestContractCatchesAnswersThatLeaveTheFile(t *testing.T) {
	t.Parallel()
	const product = `{"id":"p1","name":"Sneaker","price_cents":100,"currency":"usd","available":3,"max_per_user":2,"opens_at":null,"closes_at":null,"queue_rate":0,"variants":[{"id":"default","name":"Sneaker","price_cents":100,"available":3}],"allocation":"first_come","draw_at":null,"draw_commitment":null,"draw_entries_digest":null,"draw_seed":null}`
	const hold = `{"id":"r1","product_id":"p1","variant_id":"default","quantity":1,"status":"reserved","expires_at":"2026-01-01T00:00:00Z","created_at":"2026-01-01T00:00:00Z","order_id":null,"available":2}`
	shopper := "Bearer a.b.c"
	cases := []struct {
		name               string
		method, path, auth string
		body               string
		status             int
		header             map[string]string
		answer             string
		want               string // a part of the violation; "" for none
	}{
		{"valid catalog", "GET", "/products", "", "", 200, nil, `{"products":[` + product + `]}`, ""},
		{"extra field in the answer", "GET", "/products", "", "", 200, nil, `{"products":[],"extra":1}`, "leaves the file"},
		{"extra field in a product", "GET", "/products/p1", "", "", 200, nil, product[:len(product)-1] + `,"secret":"x"}`, "leaves the file"},
		{"missing required field", "GET", "/products/p1", "", "", 200, nil, `{"id":"p1","name":"Sneaker","price_cents":100,"currency":"usd","max_per_user":2}`, "leaves the file"},
		{"undeclared status", "GET", "/products/p1", "", "", http.StatusTeapot, nil, `{"error":{"code":"internal","message":"x"}}`, "leaves the file"},
		{"error code of another status", "POST", "/reservations", shopper, `{"product_id":"p1"}`, 409, nil, `{"error":{"code":"forbidden","message":"x"}}`, "leaves the file"},
		{"error shape with internals field", "GET", "/products/p1", "", "", 404, nil, `{"error":{"code":"not_found","message":"x","stack":"..."}}`, "leaves the file"},
		{"429 without Retry-After", "POST", "/reservations", shopper, `{"product_id":"p1"}`, 429, nil, `{"error":{"code":"rate_limited","message":"slow down"}}`, "leaves the file"},
		{"429 with Retry-After", "POST", "/reservations", shopper, `{"product_id":"p1"}`, 429, map[string]string{"Retry-After": "1"}, `{"error":{"code":"rate_limited","message":"slow down"}}`, ""},
		{"valid hold", "POST", "/reservations", shopper, `{"product_id":"p1","quantity":1}`, 201, nil, hold, ""},
		{"unknown request field accepted", "POST", "/reservations", shopper, `{"product_id":"p1","bogus":1}`, 201, nil, hold, "the file refuses this request"},
		{"unknown request field refused", "POST", "/reservations", shopper, `{"product_id":"p1","bogus":1}`, 400, nil, `{"error":{"code":"invalid_request","message":"unknown field","details":{"field":"bogus"}}}`, ""},
		{"no token accepted", "GET", "/reservations", "", "", 200, nil, `{"reservations":[]}`, "the file refuses this request"},
		{"no token refused", "GET", "/reservations", "", "", 401, nil, `{"error":{"code":"unauthenticated","message":"x"}}`, ""},
		{"route not in the file", "GET", "/nowhere", "", "", 200, nil, `{}`, "not in the file"},
		{"unknown route answered 404", "GET", "/nowhere", "", "", 404, nil, `{"error":{"code":"not_found","message":"no route"}}`, ""},
		{"wrong method answered 405", "PATCH", "/products", "", "", 405, nil, `{"error":{"code":"method_not_allowed","message":"no"}}`, ""},
		{"wrong method answered 200", "PATCH", "/products", "", "", 200, nil, `{"products":[]}`, "not in the file"},
		{"body on a 204", "DELETE", "/reservations/r1", shopper, "", 204, nil, ``, ""},
		{"undeclared success status", "DELETE", "/reservations/r1", shopper, "", 200, nil, `{}`, "leaves the file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &contractChecker{v: contractValidator(t), routes: contractDoc.routes}
			h := c.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body) //nolint:errcheck
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				if tc.answer != "" {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.answer) //nolint:errcheck
			}))
			srv := httptest.NewServer(h)
			defer srv.Close()
			r := call(t, srv, tc.method, tc.path, tc.auth, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			got := strings.Join(c.Violations(), "\n")
			switch {
			case tc.want == "" && got != "":
				t.Errorf("reported an exchange the file allows:\n%s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("want a violation containing %q, got %q", tc.want, got)
			}
		})
	}
}

// TestContractFileIsValidAndComplete: the file is a valid OpenAPI 3.1 document, every route the
// functions serve is in it, and every API route in it is served unless it says it is not yet.
func TestContractFileIsValidAndComplete(t *testing.T) {
	t.Parallel()
	v := contractValidator(t)
	if ok, errs := v.ValidateDocument(); !ok {
		t.Fatalf("web/api/openapi.yaml is not a valid OpenAPI document: %s", describe(errs))
	}
	served := map[string]bool{}
	for _, m := range []*apigw.Mux{handler.Reserve(nil, quiet), handler.Admin(nil, quiet), handler.Checkout(nil, quiet), handler.Webhook(nil, nil, quiet)} {
		for key := range m.Routes() {
			served[key] = true
			method, path, _ := strings.Cut(key, " ")
			if !contractDoc.routes[path][method] {
				t.Errorf("%s is served but not in web/api/openapi.yaml", key)
			}
		}
	}
	spec, _ := fs.ReadFile(web.API, "api/openapi.yaml")
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		t.Fatal(err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			key := strings.ToUpper(method) + " " + path
			_, local := op.Extensions.Get("x-lastunit-local-only")
			_, later := item.Extensions.Get("x-lastunit-served")
			if local || later {
				if later && !strings.Contains(op.Description, "Contract, not yet served") {
					t.Errorf("%s is marked not served but its description does not say so", key)
				}
				continue
			}
			if !served[key] {
				t.Errorf("%s is in web/api/openapi.yaml but no function serves it", key)
			}
		}
	}
}

// TestReferenceIsServed: the runner serves the reference page, its files and the OpenAPI file
// as they are in web/api, and the page's style sheet under /assets/.
func TestReferenceIsServed(t *testing.T) {
	t.Parallel()
	s := newServer(quiet, []byte(testSecret), func(context.Context) error { return nil })
	s.servePages(web.Config{Local: true})
	srv := httptest.NewServer(withContract(t, s))
	t.Cleanup(srv.Close)
	for _, tc := range []struct{ path, file, ctype string }{
		{"/reference/", "api/index.html", "text/html"},
		{"/reference/design.html", "api/design.html", "text/html"},
		{"/reference/openapi.yaml", "api/openapi.yaml", "application/yaml"},
		{"/reference/asyncapi.yaml", "api/asyncapi.yaml", "application/yaml"},
		{"/openapi.yaml", "api/openapi.yaml", "application/yaml"},
	} {
		r := call(t, srv, "GET", tc.path, "", "")
		want, err := fs.ReadFile(web.API, tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusOK || !bytes.Equal(r.body, want) {
			t.Errorf("GET %s: %d, %d bytes; want 200 and web/%s (%d bytes)", tc.path, r.status, len(r.body), tc.file, len(want))
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.ctype)
		}
	}
	wantError(t, call(t, srv, "GET", "/reference/nope.html", "", ""), http.StatusNotFound, shop.CodeNotFound, "")
	wantError(t, call(t, srv, "POST", "/reference/", "", ""), http.StatusMethodNotAllowed, shop.CodeMethodNotAllowed, "")
	if r := call(t, srv, "GET", "/assets/reference.css", "", ""); r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") {
		t.Errorf("GET /assets/reference.css: %d %q", r.status, r.header.Get("Content-Type"))
	}
}

// TestAssetsAnswerInTheErrorShape: under /assets/ the runner serves the pages' files and
// nothing else: an unknown file, a folder or the folder itself is a 404 in the error shape
// (never a plain-text 404 or a directory listing), and other methods are 405.
func TestAssetsAnswerInTheErrorShape(t *testing.T) {
	t.Parallel()
	s := newServer(quiet, []byte(testSecret), func(context.Context) error { return nil })
	s.servePages(web.Config{Local: true})
	srv := httptest.NewServer(withContract(t, s))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/assets/nope.js", "/assets/", "/assets/nope/", "/assets/app.css/", "/assets/%00"} {
		r := call(t, srv, "GET", path, "", "")
		wantError(t, r, http.StatusNotFound, shop.CodeNotFound, "")
		if bytes.Contains(r.body, []byte("store.js")) {
			t.Errorf("GET %s lists the folder: %s", path, r.body)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		wantError(t, call(t, srv, m, "/assets/app.css", "", ""), http.StatusMethodNotAllowed, shop.CodeMethodNotAllowed, "")
	}
	entries, err := fs.ReadDir(web.FS, "assets")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		want, _ := fs.ReadFile(web.FS, "assets/"+e.Name())
		if r := call(t, srv, "GET", "/assets/"+e.Name(), "", ""); r.status != http.StatusOK || !bytes.Equal(r.body, want) {
			t.Errorf("GET /assets/%s: %d, %d bytes; want 200 and the file (%d bytes)", e.Name(), r.status, len(r.body), len(want))
		}
	}
	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/assets/app.css", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD /assets/app.css: %d, want 200", resp.StatusCode)
	}
}
