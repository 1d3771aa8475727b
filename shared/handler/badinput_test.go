package handler_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/apigw"
	"lastunit/shared/handler"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// API.md, "Bad input changes nothing": every bad request of the error table gets its 4xx in
// the one error shape, says nothing about internals, and leaves both books (Postgres and the
// Redis gate) exactly as they were. The requests are the sample events of testdata/, changed
// one way each, served by the real handlers on a real Postgres and Redis.

var discard = slog.New(slog.NewJSONHandler(io.Discard, nil))

// loadEvent reads a sample API Gateway HTTP API (payload 2.0) event from testdata/.
func loadEvent(t testing.TB, name string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read sample event: %v", err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("decode sample event %s: %v", name, err)
	}
	if ev.Version != "2.0" || ev.RouteKey == "" || ev.RouteKey != ev.RequestContext.RouteKey {
		t.Fatalf("sample event %s is not a payload 2.0 HTTP API event with a route key", name)
	}
	return ev
}

// retarget points a sample event, written for product p1 and user alice, at a test's own
// product and user.
func retarget(ev *events.APIGatewayV2HTTPRequest, productID, user string) {
	if ev.PathParameters["id"] == "p1" {
		ev.PathParameters["id"] = productID
		ev.RawPath = strings.Replace(ev.RawPath, "/p1", "/"+productID, 1)
		ev.RequestContext.HTTP.Path = ev.RawPath
	}
	ev.Body = strings.ReplaceAll(ev.Body, `"p1"`, `"`+productID+`"`)
	if a := ev.RequestContext.Authorizer; a != nil && a.JWT != nil {
		a.JWT.Claims["sub"] = user
	}
}

func setBody(ev *events.APIGatewayV2HTTPRequest, body string) {
	ev.Body, ev.IsBase64Encoded = body, false
}

func setParam(ev *events.APIGatewayV2HTTPRequest, name, value string) {
	if ev.PathParameters == nil {
		ev.PathParameters = map[string]string{}
	}
	ev.PathParameters[name] = value
}

func setClaim(ev *events.APIGatewayV2HTTPRequest, name, value string) {
	ev.RequestContext.Authorizer.JWT.Claims[name] = value
}

func delClaim(ev *events.APIGatewayV2HTTPRequest, name string) {
	delete(ev.RequestContext.Authorizer.JWT.Claims, name)
}

// errorReply is API.md's error shape, decoded strictly.
type errorReply struct {
	Error struct {
		Code    shop.Code      `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
}

// leaks are words that only internals would put in an answer (matched without case).
var leaks = []string{"sql", "pgx", "pgconn", "postgres", "redis", "panic", "goroutine", "runtime error",
	"dial tcp", "connection refused", "deadline exceeded", "stack", ".go:"}

// checkError asserts that resp is API.md's error shape with status and code, that
// details.field is field ("" means no field), that every key of want is in the details,
// and that nothing internal shows.
func checkError(t testing.TB, resp events.APIGatewayV2HTTPResponse, status int, code shop.Code, field string, want map[string]any) {
	t.Helper()
	checkNoInternals(t, checkShape(t, resp, status, code, field, want))
}

// checkShape is checkError without the look for internals (for bodies that may echo
// arbitrary client input, such as an unknown field's name).
func checkShape(t testing.TB, resp events.APIGatewayV2HTTPResponse, status int, code shop.Code, field string, want map[string]any) string {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d; body %s", resp.StatusCode, status, resp.Body)
	}
	if ct := apigw.Header(resp.Headers, "Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	body := resp.Body
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			t.Fatalf("base64 body: %v", err)
		}
		body = string(b)
	}
	var r errorReply
	if err := jsonStrict(body, &r); err != nil {
		t.Fatalf("body is not the error shape: %v: %s", err, body)
	}
	if r.Error.Code != code {
		t.Errorf("code %q, want %q; body %s", r.Error.Code, code, body)
	}
	if r.Error.Message == "" {
		t.Errorf("no message: %s", body)
	}
	if got, _ := r.Error.Details["field"].(string); got != field {
		t.Errorf("details.field %q, want %q; body %s", got, field, body)
	}
	for k, v := range want {
		if fmt.Sprint(r.Error.Details[k]) != fmt.Sprint(v) {
			t.Errorf("details.%s = %v, want %v; body %s", k, r.Error.Details[k], v, body)
		}
	}
	return body
}

// jsonStrict decodes one JSON value with no unknown fields and nothing after it.
func jsonStrict(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

func checkNoInternals(t testing.TB, body string) {
	t.Helper()
	if strings.Contains(body, "ERROR:") {
		t.Errorf("body leaks a database error: %s", body)
	}
	low := strings.ToLower(body)
	for _, w := range leaks {
		if strings.Contains(low, w) {
			t.Errorf("body leaks internals (%q): %s", w, body)
		}
	}
}

// snapshot is everything a request could change for some products and users: the ledgers,
// the raw Postgres rows and every Redis key of the products.
type snapshot struct {
	Ledgers map[string]testenv.Ledger
	PG      map[string]string
	Redis   map[string]string
}

func takeSnapshot(t testing.TB, env *testenv.Env, products, users []string) snapshot {
	t.Helper()
	ctx := context.Background()
	s := snapshot{Ledgers: map[string]testenv.Ledger{}, PG: map[string]string{}, Redis: map[string]string{}}
	query := func(key, sql string, arg string) {
		var out *string
		if err := env.Pool.QueryRow(ctx, sql, arg).Scan(&out); err != nil {
			t.Fatalf("snapshot %s: %v", key, err)
		}
		if out != nil {
			s.PG[key] = *out
		}
	}
	for _, id := range products {
		query("product "+id, `SELECT (SELECT row_to_json(p)::text FROM products p WHERE id = $1)`, id)
		query("holds "+id, `SELECT json_agg(r ORDER BY id)::text FROM reservations r WHERE product_id = $1`, id)
		query("variants "+id, `SELECT json_agg(v ORDER BY id)::text FROM product_variants v WHERE product_id = $1`, id)
		query("slots "+id, `SELECT json_agg(s ORDER BY variant_id, slot)::text FROM product_slots s WHERE product_id = $1`, id)
		query("draw "+id, `SELECT (SELECT row_to_json(d)::text FROM draws d WHERE product_id = $1)`, id)
		query("entries "+id, `SELECT json_agg(e ORDER BY user_id)::text FROM draw_entries e WHERE product_id = $1`, id)
		query("ranks "+id, `SELECT json_agg(r ORDER BY rank)::text FROM draw_ranks r WHERE product_id = $1`, id)
		if _, ok := s.PG["product "+id]; ok {
			s.Ledgers[id] = env.ReadLedger(t, id)
		}
		for _, k := range redisKeys(t, env, "{p:"+id+"}:*") {
			s.Redis[k] = redisDump(t, env, k)
		}
	}
	for _, u := range users {
		query("holds of "+u, `SELECT json_agg(r ORDER BY id)::text FROM reservations r WHERE user_id = $1`, u)
		query("idempotency "+u, `SELECT json_agg(k ORDER BY key)::text FROM idempotency_keys k WHERE user_id = $1`, u)
	}
	return s
}

func redisKeys(t testing.TB, env *testenv.Env, pattern string) []string {
	t.Helper()
	var keys []string
	iter := env.Redis.Scan(context.Background(), 0, pattern, 100).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan redis: %v", err)
	}
	sort.Strings(keys)
	return keys
}

func redisDump(t testing.TB, env *testenv.Env, key string) string {
	t.Helper()
	ctx := context.Background()
	typ, err := env.Redis.Type(ctx, key).Result()
	if err != nil {
		t.Fatalf("redis type %s: %v", key, err)
	}
	var v any
	switch typ {
	case "string":
		v, err = env.Redis.Get(ctx, key).Result()
	case "hash":
		v, err = env.Redis.HGetAll(ctx, key).Result()
	case "zset":
		v, err = env.Redis.ZRangeWithScores(ctx, key, 0, -1).Result()
	case "set":
		var m []string
		m, err = env.Redis.SMembers(ctx, key).Result()
		sort.Strings(m)
		v = m
	case "list":
		v, err = env.Redis.LRange(ctx, key, 0, -1).Result()
	case "none":
		v = nil
	default:
		t.Fatalf("redis key %s has type %s", key, typ)
	}
	if err != nil {
		t.Fatalf("redis read %s: %v", key, err)
	}
	ttl, _ := env.Redis.PTTL(ctx, key).Result()
	return fmt.Sprintf("%s %v expiring=%v", typ, v, ttl > 0)
}

// checkUnchanged fails unless after equals before, and checks that each product's books
// still balance with the units it had.
func checkUnchanged(t testing.TB, env *testenv.Env, before, after snapshot) {
	t.Helper()
	if !reflect.DeepEqual(before.PG, after.PG) {
		t.Errorf("postgres changed:\nbefore %v\nafter  %v", before.PG, after.PG)
	}
	if !reflect.DeepEqual(before.Redis, after.Redis) {
		t.Errorf("redis changed:\nbefore %v\nafter  %v", before.Redis, after.Redis)
	}
	if !reflect.DeepEqual(before.Ledgers, after.Ledgers) {
		t.Errorf("ledger changed:\nbefore %+v\nafter  %+v", before.Ledgers, after.Ledgers)
	}
	for id, l := range before.Ledgers {
		env.CheckLedger(t, id, l.Stock+l.Sold)
	}
}

// caseEnv is one case's own corner of the shared Env: its product, its caller, and what
// its setup made.
type caseEnv struct {
	env     *testenv.Env
	product string   // the case's product (created unless noProduct)
	unknown string   // a valid product id that no one creates
	user    string   // the caller (sub claim)
	other   string   // another shopper
	hold    string   // a reservation made by setup
	watch   []string // more product ids whose books must not change
}

func (c *caseEnv) reserve(t testing.TB, user string, qty int64) string {
	t.Helper()
	out, err := c.env.Shop.Reserve(context.Background(), shop.ReserveRequest{UserID: user, ProductID: c.product, Quantity: qty})
	if err != nil {
		t.Fatalf("setup reserve %d of %s for %s: %v", qty, c.product, user, err)
	}
	return out.ID
}

// badCase is one bad request and the answer API.md's table gives it.
type badCase struct {
	name       string
	event      string // sample event in testdata/
	noProduct  bool   // do not create the case's product
	stock, max int64  // the product's stock and max_per_user (default 5 and 3)
	setup      func(t *testing.T, c *caseEnv)
	mod        func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest)
	status     int
	code       shop.Code
	field      string         // details.field, "" when there must be none
	details    map[string]any // other details the answer must carry
}

func body(s string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
	return func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
		setBody(ev, strings.ReplaceAll(s, "{P}", c.product))
	}
}

func header(name, value string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
	return func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
		if value == "" {
			delete(ev.Headers, strings.ToLower(name))
			return
		}
		ev.Headers[strings.ToLower(name)] = value
	}
}

func groups(value string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
	return func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
		if value == "" {
			delClaim(ev, "cognito:groups")
			return
		}
		setClaim(ev, "cognito:groups", value)
	}
}

func pathID(id string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
	return func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
		id := strings.ReplaceAll(id, "{U}", c.unknown)
		setParam(ev, "id", id)
		if shop.ValidProductID(id) {
			c.watch = append(c.watch, id)
		}
	}
}

func noAuthorizer(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.Authorizer = nil }

func noJWT(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
	ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{}
}

func noSub(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) { delClaim(ev, "sub") }

func emptySub(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) { setClaim(ev, "sub", "") }

// subClaim sets the token's sub claim to sub.
func subClaim(sub string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
	return func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) { setClaim(ev, "sub", sub) }
}

func both(fs ...func(*caseEnv, *events.APIGatewayV2HTTPRequest)) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
	return func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
		for _, f := range fs {
			f(c, ev)
		}
	}
}

// oversized is a valid reserve body padded with spaces to one byte over the limit.
func oversized() string {
	b := `{"product_id":"{P}","quantity":1}`
	return b + strings.Repeat(" ", apigw.MaxBody+1-len(b))
}

// runBadInput serves each case on one shared Env, each with its own product and users.
func runBadInput(t *testing.T, cases []badCase) {
	env := testenv.NewEnv(t)
	reserve := handler.Reserve(env.Shop, discard)
	admin := handler.Admin(env.Shop, discard)
	muxFor := func(routeKey string) *apigw.Mux {
		if _, ok := admin.Routes()[routeKey]; ok {
			return admin
		}
		return reserve
	}
	seen := map[string]bool{}
	for i, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("two cases are named %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &caseEnv{env: env, product: fmt.Sprintf("p-%03d", i), unknown: fmt.Sprintf("nope-%03d", i),
				user: fmt.Sprintf("user-%03d", i), other: fmt.Sprintf("other-%03d", i)}
			if !tc.noProduct {
				st, mx := tc.stock, tc.max
				if st == 0 {
					st = 5
				}
				if mx == 0 {
					mx = 3
				}
				env.Product(t, c.product, st, mx)
			}
			if tc.setup != nil {
				tc.setup(t, c)
			}
			ev := loadEvent(t, tc.event)
			retarget(&ev, c.product, c.user)
			if tc.mod != nil {
				tc.mod(c, &ev)
			}
			products := append([]string{c.product, c.unknown}, c.watch...)
			users := []string{c.user, c.other}
			before := takeSnapshot(t, env, products, users)

			resp, err := muxFor(ev.RouteKey).Serve(context.Background(), ev)
			if err != nil {
				t.Fatalf("Serve returned an error: %v", err)
			}
			checkError(t, resp, tc.status, tc.code, tc.field, tc.details)
			if len(resp.Body) > 1024 {
				t.Errorf("error body is %d bytes: it echoes the request", len(resp.Body))
			}
			checkUnchanged(t, env, before, takeSnapshot(t, env, products, users))
		})
	}
}

func TestReserveBadInput(t *testing.T) {
	t.Parallel()
	const ev = "reserve.json"
	idem := func(k string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
		return both(body(`{"product_id":"{P}","quantity":1}`), header("Idempotency-Key", k))
	}
	cases := []badCase{
		// Malformed JSON.
		{name: "truncated JSON", event: ev, mod: body(`{"product_id":"{P}","quantity":`), status: 400, code: shop.CodeInvalidRequest},
		{name: "unterminated string", event: ev, mod: body(`{"product_id":"{P}`), status: 400, code: shop.CodeInvalidRequest},
		{name: "single quotes", event: ev, mod: body(`{'product_id':'{P}'}`), status: 400, code: shop.CodeInvalidRequest},
		{name: "trailing comma", event: ev, mod: body(`{"product_id":"{P}","quantity":1,}`), status: 400, code: shop.CodeInvalidRequest},
		{name: "stray closing bracket", event: ev, mod: body(`{"product_id":"{P}","quantity":1}]`), status: 400, code: shop.CodeInvalidRequest},
		{name: "stray closing brace", event: ev, mod: body(`{"product_id":"{P}","quantity":1}}`), status: 400, code: shop.CodeInvalidRequest},
		{name: "second value", event: ev, mod: body(`{"product_id":"{P}"} {"quantity":1}`), status: 400, code: shop.CodeInvalidRequest},
		{name: "garbage after value", event: ev, mod: body(`{"product_id":"{P}","quantity":1} x`), status: 400, code: shop.CodeInvalidRequest},
		{name: "array body", event: ev, mod: body(`[{"product_id":"{P}"}]`), status: 400, code: shop.CodeInvalidRequest},
		{name: "string body", event: ev, mod: body(`"{P}"`), status: 400, code: shop.CodeInvalidRequest},
		{name: "number body", event: ev, mod: body(`2`), status: 400, code: shop.CodeInvalidRequest},
		{name: "bad base64", event: ev, mod: func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
			ev.Body, ev.IsBase64Encoded = "not base64 at all!", true
		}, status: 400, code: shop.CodeInvalidRequest},
		{name: "invalid UTF-8 in base64 body", event: ev, mod: func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte("{\"product_id\":\"\xff\xfe\"}")), true
		}, status: 400, code: shop.CodeInvalidRequest, field: "product_id"},

		// Unknown fields and wrong types.
		{name: "unknown field", event: ev, mod: body(`{"product_id":"{P}","quantity":1,"coupon":"FREE"}`), status: 400, code: shop.CodeInvalidRequest, field: "coupon"},
		{name: "user_id smuggled", event: ev, mod: body(`{"product_id":"{P}","quantity":1,"user_id":"someone"}`), status: 400, code: shop.CodeInvalidRequest, field: "user_id"},
		{name: "quantity as string", event: ev, mod: body(`{"product_id":"{P}","quantity":"2"}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "quantity fractional", event: ev, mod: body(`{"product_id":"{P}","quantity":2.5}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "quantity 1e400", event: ev, mod: body(`{"product_id":"{P}","quantity":1e400}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "quantity over int64", event: ev, mod: body(`{"product_id":"{P}","quantity":9223372036854775808}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "quantity bool", event: ev, mod: body(`{"product_id":"{P}","quantity":true}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "quantity array", event: ev, mod: body(`{"product_id":"{P}","quantity":[1]}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "product_id number", event: ev, mod: body(`{"product_id":5,"quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id object", event: ev, mod: body(`{"product_id":{"id":"{P}"},"quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},

		// Out of range.
		{name: "quantity 0", event: ev, mod: body(`{"product_id":"{P}","quantity":0}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "quantity -1", event: ev, mod: body(`{"product_id":"{P}","quantity":-1}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "quantity 1001", event: ev, mod: body(`{"product_id":"{P}","quantity":1001}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "quantity min int64", event: ev, mod: body(`{"product_id":"{P}","quantity":-9223372036854775808}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},

		// Product ids that break the pattern.
		{name: "product_id uppercase", event: ev, mod: body(`{"product_id":"P-UPPER","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id 65 chars", event: ev, mod: body(`{"product_id":"` + strings.Repeat("a", 65) + `","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id leading dash", event: ev, mod: body(`{"product_id":"-{P}","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id leading underscore", event: ev, mod: body(`{"product_id":"_{P}","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id empty", event: ev, mod: body(`{"product_id":"","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id missing", event: ev, mod: body(`{"quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id null", event: ev, mod: body(`{"product_id":null,"quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id trailing space", event: ev, mod: body(`{"product_id":"{P} ","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id trailing newline", event: ev, mod: body(`{"product_id":"{P}\n","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id redis hash tag", event: ev, mod: body(`{"product_id":"{P}}:gate","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id SQL", event: ev, mod: body(`{"product_id":"{P}' OR '1'='1","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "product_id unicode", event: ev, mod: body(`{"product_id":"caf\u00e9","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "empty body", event: ev, mod: body(``), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},
		{name: "empty object", event: ev, mod: body(`{}`), status: 400, code: shop.CodeInvalidRequest, field: "product_id"},

		// Size and media type.
		{name: "body over 64 KiB", event: ev, mod: body(oversized()), status: 413, code: shop.CodePayloadTooLarge},
		{name: "base64 body over 64 KiB", event: ev, mod: func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
			ev.Body = base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(oversized(), "{P}", c.product)))
			ev.IsBase64Encoded = true
		}, status: 413, code: shop.CodePayloadTooLarge},
		{name: "text/plain", event: ev, mod: header("Content-Type", "text/plain"), status: 415, code: shop.CodeUnsupportedMediaType},
		{name: "form encoded", event: ev, mod: both(header("Content-Type", "application/x-www-form-urlencoded"), body(`product_id={P}&quantity=1`)), status: 415, code: shop.CodeUnsupportedMediaType},
		{name: "no content type", event: ev, mod: header("Content-Type", ""), status: 415, code: shop.CodeUnsupportedMediaType},
		{name: "json-ish content type", event: ev, mod: header("Content-Type", "application/jsonx"), status: 415, code: shop.CodeUnsupportedMediaType},

		// Identity.
		{name: "no authorizer", event: ev, mod: noAuthorizer, status: 401, code: shop.CodeUnauthenticated},
		{name: "no jwt", event: ev, mod: noJWT, status: 401, code: shop.CodeUnauthenticated},
		{name: "no sub claim", event: ev, mod: noSub, status: 401, code: shop.CodeUnauthenticated},
		{name: "empty sub claim", event: ev, mod: emptySub, status: 401, code: shop.CodeUnauthenticated},
		{name: "NUL in sub", event: ev, mod: subClaim("alice\x00"), status: 400, code: shop.CodeInvalidRequest, field: "sub"},
		{name: "newline in sub", event: ev, mod: subClaim("alice\nbob"), status: 400, code: shop.CodeInvalidRequest, field: "sub"},
		{name: "escape in sub", event: ev, mod: subClaim("\x1b[31malice"), status: 400, code: shop.CodeInvalidRequest, field: "sub"},
		{name: "C1 control in sub", event: ev, mod: subClaim("alice\u0085"), status: 400, code: shop.CodeInvalidRequest, field: "sub"},
		{name: "invalid UTF-8 in sub", event: ev, mod: subClaim("alice\xff"), status: 400, code: shop.CodeInvalidRequest, field: "sub"},
		{name: "no claims and bad body", event: ev, mod: both(noAuthorizer, body(`{`)), status: 401, code: shop.CodeUnauthenticated},

		// State.
		{name: "unknown product", event: ev, mod: body(`{"product_id":"nope-{P}","quantity":1}`), status: 404, code: shop.CodeNotFound,
			setup: func(t *testing.T, c *caseEnv) { c.watch = append(c.watch, "nope-"+c.product) }},
		{name: "out of stock", event: ev, stock: 2, max: 5, mod: body(`{"product_id":"{P}","quantity":3}`),
			status: 409, code: shop.CodeOutOfStock, details: map[string]any{"available": 2}},
		{name: "out of stock after holds", event: ev, stock: 3, max: 3, mod: body(`{"product_id":"{P}","quantity":2}`),
			setup:  func(t *testing.T, c *caseEnv) { c.reserve(t, c.other, 2) },
			status: 409, code: shop.CodeOutOfStock, details: map[string]any{"available": 1}},
		{name: "sold out", event: ev, stock: 1, max: 1, mod: body(`{"product_id":"{P}","quantity":1}`),
			setup:  func(t *testing.T, c *caseEnv) { c.reserve(t, c.other, 1) },
			status: 409, code: shop.CodeOutOfStock, details: map[string]any{"available": 0}},
		{name: "limit in one request", event: ev, stock: 10, max: 2, mod: body(`{"product_id":"{P}","quantity":3}`),
			status: 409, code: shop.CodeLimitExceeded, details: map[string]any{"limit": 2}},
		{name: "limit after own hold", event: ev, stock: 10, max: 2, mod: body(`{"product_id":"{P}","quantity":1}`),
			setup:  func(t *testing.T, c *caseEnv) { c.reserve(t, c.user, 2) },
			status: 409, code: shop.CodeLimitExceeded, details: map[string]any{"limit": 2}},

		// Idempotency-Key.
		{name: "idempotency key 256 chars", event: ev, mod: idem(strings.Repeat("k", 256)), status: 400, code: shop.CodeInvalidRequest, field: "Idempotency-Key"},
		{name: "idempotency key with space", event: ev, mod: idem("key one"), status: 400, code: shop.CodeInvalidRequest, field: "Idempotency-Key"},
		{name: "idempotency key with tab", event: ev, mod: idem("key\tone"), status: 400, code: shop.CodeInvalidRequest, field: "Idempotency-Key"},
		{name: "idempotency key non-ASCII", event: ev, mod: idem("clé"), status: 400, code: shop.CodeInvalidRequest, field: "Idempotency-Key"},
		{name: "idempotency key DEL", event: ev, mod: idem("key\x7f"), status: 400, code: shop.CodeInvalidRequest, field: "Idempotency-Key"},
	}
	runBadInput(t, cases)
}

func TestReleaseBadInput(t *testing.T) {
	t.Parallel()
	const ev = "release.json"
	own := func(t *testing.T, c *caseEnv) { c.hold = c.reserve(t, c.user, 1) }
	theHold := func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) { setParam(ev, "id", c.hold) }
	cases := []badCase{
		{name: "someone else's reservation", event: ev, mod: theHold, status: 404, code: shop.CodeNotFound,
			setup: func(t *testing.T, c *caseEnv) { c.hold = c.reserve(t, c.other, 1) }},
		{name: "well-formed unknown id", event: ev, mod: pathID("r_aaaaaaaaaaaaaaaaaaaaaaaa"), status: 404, code: shop.CodeNotFound, setup: own},
		{name: "bad id", event: ev, mod: pathID("nope"), status: 404, code: shop.CodeNotFound, setup: own},
		{name: "empty id", event: ev, mod: pathID(""), status: 404, code: shop.CodeNotFound, setup: own},
		{name: "uppercase id", event: ev, mod: pathID("R_AAAAAAAAAAAAAAAAAAAAAAAA"), status: 404, code: shop.CodeNotFound, setup: own},
		{name: "id too long", event: ev, mod: pathID("r_aaaaaaaaaaaaaaaaaaaaaaaaa"), status: 404, code: shop.CodeNotFound, setup: own},
		{name: "id with SQL", event: ev, mod: pathID("r_' OR '1'='1"), status: 404, code: shop.CodeNotFound, setup: own},
		{name: "own id with suffix", event: ev, mod: func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) { setParam(ev, "id", c.hold+"x") },
			status: 404, code: shop.CodeNotFound, setup: own},
		{name: "own id uppercased", event: ev, mod: func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) { setParam(ev, "id", strings.ToUpper(c.hold)) },
			status: 404, code: shop.CodeNotFound, setup: own},
		{name: "checked out", event: ev, mod: theHold, status: 409, code: shop.CodeInvalidState, details: map[string]any{"status": shop.StatusCheckedOut},
			setup: func(t *testing.T, c *caseEnv) {
				c.hold = c.reserve(t, c.user, 2)
				if _, err := c.env.Pool.Exec(context.Background(), `UPDATE reservations SET status = 'checked_out' WHERE id = $1`, c.hold); err != nil {
					t.Fatalf("check out: %v", err)
				}
			}},
		{name: "no authorizer", event: ev, mod: both(theHold, noAuthorizer), status: 401, code: shop.CodeUnauthenticated, setup: own},
		{name: "no sub claim", event: ev, mod: both(theHold, noSub), status: 401, code: shop.CodeUnauthenticated, setup: own},
		{name: "sub of the owner in another claim", event: ev, status: 404, code: shop.CodeNotFound, setup: own,
			mod: func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
				theHold(c, ev)
				setClaim(ev, "sub", c.other)
				setClaim(ev, "username", c.user)
			}},
	}
	runBadInput(t, cases)
}

func TestProductBadInput(t *testing.T) {
	t.Parallel()
	const ev = "get_product.json"
	cases := []badCase{
		{name: "unknown product", event: ev, mod: pathID("{U}"), status: 404, code: shop.CodeNotFound},
		{name: "uppercase id", event: ev, mod: pathID("P1"), status: 400, code: shop.CodeInvalidRequest, field: "id"},
		{name: "id 65 chars", event: ev, mod: pathID(strings.Repeat("a", 65)), status: 400, code: shop.CodeInvalidRequest, field: "id"},
		{name: "id leading dash", event: ev, mod: pathID("-p1"), status: 400, code: shop.CodeInvalidRequest, field: "id"},
		{name: "unknown route key", event: ev, mod: func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) { ev.RouteKey = "PATCH /products/{id}" },
			status: 404, code: shop.CodeNotFound},
	}
	runBadInput(t, cases)
}

func TestAdminBadInput(t *testing.T) {
	t.Parallel()
	const put, restock, list = "admin_put_product.json", "admin_restock.json", "admin_list_products.json"
	good := map[string]any{"name": "Tee", "price_cents": 2500, "currency": "usd", "stock": 10, "max_per_user": 2}
	// with returns a PUT body: the good one with field set to v (a raw JSON value), or
	// without field when v is "-".
	with := func(field, v string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
		m := map[string]json.RawMessage{}
		for k, x := range good {
			b, _ := json.Marshal(x)
			m[k] = b
		}
		if v == "-" {
			delete(m, field)
		} else {
			m[field] = json.RawMessage(v)
		}
		b, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		return body(string(b))
	}
	holdThree := func(t *testing.T, c *caseEnv) { c.hold = c.reserve(t, c.other, 3) }
	cases := []badCase{
		// Not an admin.
		{name: "put without groups", event: put, mod: groups(""), status: 403, code: shop.CodeForbidden},
		{name: "put as shopper", event: put, mod: groups("[shoppers]"), status: 403, code: shop.CodeForbidden},
		{name: "put as administrators", event: put, mod: groups("administrators"), status: 403, code: shop.CodeForbidden},
		{name: "put as admins list", event: put, mod: groups(`["admins","Admin"]`), status: 403, code: shop.CodeForbidden},
		{name: "put admin in another claim", event: put, mod: both(groups(""), func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
			setClaim(ev, "groups", "[admin]")
			setClaim(ev, "scope", "admin")
		}), status: 403, code: shop.CodeForbidden},
		{name: "put creating without groups", event: put, noProduct: true, mod: groups("[shoppers]"), status: 403, code: shop.CodeForbidden},
		{name: "put without authorizer", event: put, mod: noAuthorizer, status: 401, code: shop.CodeUnauthenticated},
		{name: "put without sub", event: put, mod: noSub, status: 401, code: shop.CodeUnauthenticated},
		{name: "restock as shopper", event: restock, mod: groups("[shoppers]"), status: 403, code: shop.CodeForbidden},
		{name: "restock without authorizer", event: restock, mod: noAuthorizer, status: 401, code: shop.CodeUnauthenticated},
		{name: "list as shopper", event: list, mod: groups("[shoppers]"), status: 403, code: shop.CodeForbidden},
		{name: "list without authorizer", event: list, mod: noAuthorizer, status: 401, code: shop.CodeUnauthenticated},

		// Missing fields, on an existing product and on a new one.
		{name: "missing name", event: put, mod: with("name", "-"), status: 400, code: shop.CodeInvalidRequest, field: "name"},
		{name: "missing price_cents", event: put, mod: with("price_cents", "-"), status: 400, code: shop.CodeInvalidRequest, field: "price_cents"},
		{name: "missing currency", event: put, mod: with("currency", "-"), status: 400, code: shop.CodeInvalidRequest, field: "currency"},
		{name: "missing stock", event: put, mod: with("stock", "-"), status: 400, code: shop.CodeInvalidRequest, field: "stock"},
		{name: "missing max_per_user", event: put, mod: with("max_per_user", "-"), status: 400, code: shop.CodeInvalidRequest, field: "max_per_user"},
		{name: "null stock", event: put, mod: with("stock", "null"), status: 400, code: shop.CodeInvalidRequest, field: "stock"},
		{name: "new product missing stock", event: put, noProduct: true, mod: with("stock", "-"), status: 400, code: shop.CodeInvalidRequest, field: "stock"},
		{name: "new product empty body", event: put, noProduct: true, mod: body(``), status: 400, code: shop.CodeInvalidRequest, field: "name"},

		// Bad values.
		{name: "currency upper case", event: put, mod: with("currency", `"USD"`), status: 400, code: shop.CodeInvalidRequest, field: "currency"},
		{name: "currency two letters", event: put, mod: with("currency", `"us"`), status: 400, code: shop.CodeInvalidRequest, field: "currency"},
		{name: "currency four letters", event: put, mod: with("currency", `"euro"`), status: 400, code: shop.CodeInvalidRequest, field: "currency"},
		{name: "currency empty", event: put, mod: with("currency", `""`), status: 400, code: shop.CodeInvalidRequest, field: "currency"},
		{name: "currency symbol", event: put, mod: with("currency", `"u$d"`), status: 400, code: shop.CodeInvalidRequest, field: "currency"},
		{name: "currency with newline", event: put, mod: with("currency", `"usd\n"`), status: 400, code: shop.CodeInvalidRequest, field: "currency"},
		{name: "new product bad currency", event: put, noProduct: true, mod: with("currency", `"USD"`), status: 400, code: shop.CodeInvalidRequest, field: "currency"},
		{name: "negative stock", event: put, mod: with("stock", "-1"), status: 400, code: shop.CodeInvalidRequest, field: "stock"},
		{name: "stock too large", event: put, mod: with("stock", "1000000001"), status: 400, code: shop.CodeInvalidRequest, field: "stock"},
		{name: "stock as string", event: put, mod: with("stock", `"10"`), status: 400, code: shop.CodeInvalidRequest, field: "stock"},
		{name: "stock fractional", event: put, mod: with("stock", `10.5`), status: 400, code: shop.CodeInvalidRequest, field: "stock"},
		{name: "negative price", event: put, mod: with("price_cents", "-1"), status: 400, code: shop.CodeInvalidRequest, field: "price_cents"},
		{name: "price in dollars", event: put, mod: with("price_cents", "25.00"), status: 400, code: shop.CodeInvalidRequest, field: "price_cents"},
		{name: "price too large", event: put, mod: with("price_cents", "10000000001"), status: 400, code: shop.CodeInvalidRequest, field: "price_cents"},
		{name: "empty name", event: put, mod: with("name", `""`), status: 400, code: shop.CodeInvalidRequest, field: "name"},
		{name: "NUL in name", event: put, mod: with("name", `"Tee\u0000"`), status: 400, code: shop.CodeInvalidRequest, field: "name"},
		{name: "new product NUL in name", event: put, noProduct: true, mod: with("name", `"\u0000"`), status: 400, code: shop.CodeInvalidRequest, field: "name"},
		{name: "newline in name", event: put, mod: with("name", `"Tee\nshirt"`), status: 400, code: shop.CodeInvalidRequest, field: "name"},
		{name: "tab in name", event: put, mod: with("name", `"Tee\tshirt"`), status: 400, code: shop.CodeInvalidRequest, field: "name"},
		{name: "escape in name", event: put, mod: with("name", `"\u001b[2JTee"`), status: 400, code: shop.CodeInvalidRequest, field: "name"},
		{name: "DEL in name", event: put, mod: with("name", `"Tee\u007f"`), status: 400, code: shop.CodeInvalidRequest, field: "name"},
		{name: "C1 control in name", event: put, mod: with("name", `"Tee\u0085"`), status: 400, code: shop.CodeInvalidRequest, field: "name"},
		{name: "name 201 bytes", event: put, mod: with("name", `"`+strings.Repeat("n", 201)+`"`), status: 400, code: shop.CodeInvalidRequest, field: "name"},
		{name: "max_per_user 0", event: put, mod: with("max_per_user", "0"), status: 400, code: shop.CodeInvalidRequest, field: "max_per_user"},
		{name: "max_per_user negative", event: put, mod: with("max_per_user", "-3"), status: 400, code: shop.CodeInvalidRequest, field: "max_per_user"},
		{name: "unknown field", event: put, mod: with("sku", `"X1"`), status: 400, code: shop.CodeInvalidRequest, field: "sku"},
		// Drops.
		{name: "closes before opens", event: put, mod: withWindow(good, `"2030-01-02T00:00:00Z"`, `"2030-01-01T00:00:00Z"`),
			status: 400, code: shop.CodeInvalidRequest, field: "closes_at"},
		{name: "closes at opens", event: put, noProduct: true, mod: withWindow(good, `"2030-01-02T00:00:00Z"`, `"2030-01-02T01:00:00+01:00"`),
			status: 400, code: shop.CodeInvalidRequest, field: "closes_at"},
		{name: "opens_at not a time", event: put, mod: with("opens_at", `"tomorrow"`), status: 400, code: shop.CodeInvalidRequest, field: "opens_at"},
		{name: "closes_at a number", event: put, mod: with("closes_at", `1700000000`), status: 400, code: shop.CodeInvalidRequest, field: "closes_at"},
		{name: "queue_rate negative", event: put, mod: with("queue_rate", `-1`), status: 400, code: shop.CodeInvalidRequest, field: "queue_rate"},
		{name: "queue_rate 10001", event: put, mod: with("queue_rate", `10001`), status: 400, code: shop.CodeInvalidRequest, field: "queue_rate"},
		{name: "queue_rate fractional", event: put, mod: with("queue_rate", `2.5`), status: 400, code: shop.CodeInvalidRequest, field: "queue_rate"},
		{name: "queue_rate as string", event: put, mod: with("queue_rate", `"5"`), status: 400, code: shop.CodeInvalidRequest, field: "queue_rate"},
		{name: "sold smuggled", event: put, mod: with("sold", `0`), status: 400, code: shop.CodeInvalidRequest, field: "sold"},
		{name: "malformed JSON", event: put, mod: body(`{"name":"Tee",`), status: 400, code: shop.CodeInvalidRequest},
		{name: "array body", event: put, mod: body(`[]`), status: 400, code: shop.CodeInvalidRequest},
		{name: "bad path id", event: put, noProduct: true, mod: pathID("Bad_ID"), status: 400, code: shop.CodeInvalidRequest, field: "id"},
		{name: "path id 65 chars", event: put, noProduct: true, mod: pathID(strings.Repeat("x", 65)), status: 400, code: shop.CodeInvalidRequest, field: "id"},
		{name: "put body over 64 KiB", event: put, mod: body(`{"name":"` + strings.Repeat("n", apigw.MaxBody) + `"}`), status: 413, code: shop.CodePayloadTooLarge},
		{name: "put as text", event: put, mod: header("Content-Type", "text/plain; charset=utf-8"), status: 415, code: shop.CodeUnsupportedMediaType},

		// Stock below what is held.
		{name: "stock below held", event: put, stock: 5, max: 3, setup: holdThree, mod: with("stock", "2"),
			status: 409, code: shop.CodeInvalidState, details: map[string]any{"held": 3}},
		{name: "stock zero with holds", event: put, stock: 5, max: 3, setup: holdThree, mod: with("stock", "0"),
			status: 409, code: shop.CodeInvalidState, details: map[string]any{"held": 3}},

		// Restock.
		{name: "restock below held", event: restock, stock: 5, max: 3, setup: holdThree, mod: body(`{"delta":-3}`),
			status: 409, code: shop.CodeInvalidState, details: map[string]any{"held": 3}},
		{name: "restock below zero", event: restock, stock: 5, mod: body(`{"delta":-6}`), status: 409, code: shop.CodeInvalidState},
		{name: "restock missing delta", event: restock, mod: body(`{}`), status: 400, code: shop.CodeInvalidRequest, field: "delta"},
		{name: "restock null delta", event: restock, mod: body(`{"delta":null}`), status: 400, code: shop.CodeInvalidRequest, field: "delta"},
		{name: "restock delta as string", event: restock, mod: body(`{"delta":"5"}`), status: 400, code: shop.CodeInvalidRequest, field: "delta"},
		{name: "restock delta fractional", event: restock, mod: body(`{"delta":0.5}`), status: 400, code: shop.CodeInvalidRequest, field: "delta"},
		{name: "restock delta too large", event: restock, mod: body(`{"delta":1000000001}`), status: 400, code: shop.CodeInvalidRequest, field: "delta"},
		{name: "restock past max stock", event: restock, mod: body(`{"delta":999999999}`), status: 400, code: shop.CodeInvalidRequest, field: "delta"},
		{name: "restock unknown field", event: restock, mod: body(`{"delta":1,"stock":9}`), status: 400, code: shop.CodeInvalidRequest, field: "stock"},
		{name: "restock unknown product", event: restock, mod: pathID("{U}"), status: 404, code: shop.CodeNotFound},
		{name: "restock bad path id", event: restock, mod: pathID("UPPER"), status: 400, code: shop.CodeInvalidRequest, field: "id"},
		{name: "restock as text", event: restock, mod: header("Content-Type", "text/plain"), status: 415, code: shop.CodeUnsupportedMediaType},
	}
	runBadInput(t, cases)
}

// withWindow returns a PUT body: good with opens_at and closes_at set (raw JSON values).
func withWindow(good map[string]any, opens, closes string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
	m := map[string]json.RawMessage{"opens_at": json.RawMessage(opens), "closes_at": json.RawMessage(closes)}
	for k, x := range good {
		b, _ := json.Marshal(x)
		m[k] = b
	}
	b, _ := json.Marshal(m)
	return body(string(b))
}

// TestSampleEvents keeps testdata/ honest: each sample event, unchanged but for the product
// and user, does what API.md says, so the bad-input cases above differ from a good request
// only in what they change.
func TestSampleEvents(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	reserve := handler.Reserve(env.Shop, discard)
	admin := handler.Admin(env.Shop, discard)
	const p, user = "sample-tee", "alice-sample"
	serve := func(m *apigw.Mux, name string, mod func(*events.APIGatewayV2HTTPRequest)) (int, map[string]any) {
		t.Helper()
		ev := loadEvent(t, name)
		retarget(&ev, p, user)
		if mod != nil {
			mod(&ev)
		}
		resp, err := m.Serve(context.Background(), ev)
		if err != nil {
			t.Fatalf("%s: Serve: %v", name, err)
		}
		checkNoInternals(t, resp.Body)
		var out map[string]any
		if resp.Body != "" {
			if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
				t.Fatalf("%s: body %q: %v", name, resp.Body, err)
			}
		}
		return resp.StatusCode, out
	}
	expect := func(name string, got, want int, body map[string]any) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: status %d, want %d: %v", name, got, want, body)
		}
	}

	st, b := serve(admin, "admin_put_product.json", nil)
	expect("put", st, http.StatusOK, b)
	if b["stock"] != 10.0 || b["available"] != 10.0 || b["held"] != 0.0 || b["id"] != p {
		t.Fatalf("put answered %v", b)
	}
	st, b = serve(admin, "admin_restock.json", nil)
	expect("restock", st, http.StatusOK, b)
	if b["stock"] != 15.0 {
		t.Fatalf("restock answered %v", b)
	}
	st, b = serve(reserve, "get_product.json", nil)
	expect("get", st, http.StatusOK, b)
	if b["available"] != 15.0 {
		t.Fatalf("get answered %v", b)
	}
	st, b = serve(reserve, "reserve.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.Headers["content-type"] = "application/json; charset=utf-8"
	})
	expect("reserve", st, http.StatusCreated, b)
	if b["quantity"] != 2.0 || b["available"] != 13.0 || b["status"] != shop.StatusReserved {
		t.Fatalf("reserve answered %v", b)
	}
	id, _ := b["id"].(string)
	l := env.CheckLedger(t, p, 15)
	if l.HeldPG != 2 || l.Available != 13 {
		t.Fatalf("after reserve: %+v", l)
	}
	st, b = serve(admin, "admin_list_products.json", nil)
	expect("list", st, http.StatusOK, b)
	if ps, _ := b["products"].([]any); len(ps) != 1 || ps[0].(map[string]any)["held"] != 2.0 {
		t.Fatalf("admin list answered %v", b)
	}
	st, b = serve(reserve, "release.json", func(ev *events.APIGatewayV2HTTPRequest) { setParam(ev, "id", id) })
	expect("release", st, http.StatusNoContent, b)
	st, b = serve(reserve, "release.json", func(ev *events.APIGatewayV2HTTPRequest) { setParam(ev, "id", id) })
	expect("release again", st, http.StatusNoContent, b)
	l = env.CheckLedger(t, p, 15)
	if l.HeldPG != 0 || l.Available != 15 {
		t.Fatalf("after release: %+v", l)
	}

	// The same reserve body sent base64-encoded (as API Gateway does for binary bodies)
	// is the same request.
	st, b = serve(reserve, "reserve.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte(ev.Body)), true
	})
	expect("reserve base64", st, http.StatusCreated, b)
	env.CheckLedger(t, p, 15)

	// A body of exactly 64 KiB is accepted (the limit is "over 64 KiB").
	st, b = serve(reserve, "reserve.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.Body += strings.Repeat(" ", apigw.MaxBody-len(ev.Body))
		setClaim(ev, "sub", "bob-sample") // alice already holds her max_per_user
	})
	expect("reserve 64 KiB", st, http.StatusCreated, b)
	l = env.CheckLedger(t, p, 15)
	if l.HeldPG != 4 || l.Available != 11 {
		t.Fatalf("after two more holds: %+v", l)
	}
}
