package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"lastunit/shared/apigw"
	"lastunit/shared/handler"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
	"lastunit/web"
)

// The local runner over real HTTP: API Gateway's routing and JWT authorizer in front of the
// real handlers, on a real Postgres and Redis.

const testSecret = "server-test-secret"

var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

// startServer serves the reserve and admin functions on env through the runner.
func startServer(t *testing.T, env *testenv.Env) *httptest.Server {
	t.Helper()
	health := func(ctx context.Context) error {
		if err := env.Pool.Ping(ctx); err != nil {
			return err
		}
		return env.Redis.Ping(ctx).Err()
	}
	srv := httptest.NewServer(withContract(t, newServer(quiet, []byte(testSecret), health,
		handler.Reserve(env.Shop, quiet), handler.Admin(env.Shop, quiet))))
	t.Cleanup(srv.Close)
	return srv
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// call sends one request; auth is the whole Authorization header ("" for none).
func call(t testing.TB, srv *httptest.Server, method, path, auth, body string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

// wantError asserts API.md's error shape with status and code, and no internals.
func wantError(t testing.TB, r reply, status int, code shop.Code, field string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json: %s", ct, r.body)
	}
	var e struct {
		Error struct {
			Code    shop.Code      `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("not the error shape (%v): %s", err, r.body)
	}
	if e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("code %q message %q, want code %q: %s", e.Error.Code, e.Error.Message, code, r.body)
	}
	if got, _ := e.Error.Details["field"].(string); got != field {
		t.Errorf("details.field %q, want %q: %s", got, field, r.body)
	}
	low := strings.ToLower(string(r.body))
	for _, w := range []string{"sql", "pgx", "redis", "panic", "goroutine", "token is", "signature is invalid", "jwt"} {
		if strings.Contains(low, w) {
			t.Errorf("body leaks internals (%q): %s", w, r.body)
		}
	}
	if strings.Contains(string(r.body), "ERROR:") {
		t.Errorf("body leaks a database error: %s", r.body)
	}
}

// decodeBody decodes a JSON answer into v.
func decodeBody(t testing.TB, r reply, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// sign signs claims with method and key, as a forger or a careless client might.
func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func validClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": "mallory", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "cognito:groups": []string{"admin"}}
}

func TestServerRejects(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	srv := startServer(t, env)
	env.Product(t, "auth-tee", 5, 3)
	before := env.ReadLedger(t, "auth-tee")
	good := sign(t, jwt.SigningMethodHS256, []byte(testSecret), validClaims())
	reserve := `{"product_id":"auth-tee","quantity":1}`

	withClaims := func(edit func(jwt.MapClaims)) string {
		c := validClaims()
		edit(c)
		return "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(testSecret), c)
	}
	parts := strings.Split(good, ".")
	tampered := func() string {
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = []byte(strings.Replace(string(payload), `"mallory"`, `"alice00"`, 1))
		return "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	}()
	algNone := "Bearer " + sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims())
	// The same claims under {"alg":"none"} with the real signature kept.
	noneHeader := "Bearer " + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]

	unauth := []struct{ name, auth string }{
		{"missing", ""},
		{"empty bearer", "Bearer "},
		{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:admin"))},
		{"bare token", good},
		{"malformed", "Bearer not-a-jwt"},
		{"three garbage parts", "Bearer abc.def.ghi"},
		{"two parts", "Bearer " + parts[0] + "." + parts[1]},
		{"expired", withClaims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })},
		{"no exp", withClaims(func(c jwt.MapClaims) { delete(c, "exp") })},
		{"not yet valid", withClaims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() })},
		{"no sub", withClaims(func(c jwt.MapClaims) { delete(c, "sub") })},
		{"empty sub", withClaims(func(c jwt.MapClaims) { c["sub"] = "" })},
		{"wrong secret", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("not-the-secret"), validClaims())},
		{"default secret", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(DefaultJWTSecret), validClaims())},
		{"empty secret", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte{}, validClaims())},
		{"alg none", algNone},
		{"alg none with a signature", noneHeader},
		{"HS512 with the secret", "Bearer " + sign(t, jwt.SigningMethodHS512, []byte(testSecret), validClaims())},
		{"tampered payload", tampered},
		{"signature stripped", "Bearer " + parts[0] + "." + parts[1] + "."},
		// API Gateway would pass ["not admin"] as "[not admin]": the groups "not" and "admin".
		{"group with a space", withClaims(func(c jwt.MapClaims) { c["cognito:groups"] = []string{"not admin"} })},
		{"group with a tab", withClaims(func(c jwt.MapClaims) { c["cognito:groups"] = []string{"x\tadmin"} })},
		{"groups as a string", withClaims(func(c jwt.MapClaims) { c["cognito:groups"] = "[not admin]" })},
		{"groups not strings", withClaims(func(c jwt.MapClaims) { c["cognito:groups"] = []any{1, "admin"} })},
		{"empty group", withClaims(func(c jwt.MapClaims) { c["cognito:groups"] = []string{"", "admin"} })},
	}
	for _, tc := range unauth {
		t.Run("401 "+tc.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, call(t, srv, "POST", "/reservations", tc.auth, reserve), 401, shop.CodeUnauthenticated, "")
			wantError(t, call(t, srv, "GET", "/reservations", tc.auth, ""), 401, shop.CodeUnauthenticated, "")
			wantError(t, call(t, srv, "PUT", "/admin/products/auth-tee", tc.auth,
				`{"name":"Owned","price_cents":1,"currency":"usd","stock":1000,"max_per_user":1000}`), 401, shop.CodeUnauthenticated, "")
			if l := env.ReadLedger(t, "auth-tee"); !reflect.DeepEqual(l, before) {
				t.Errorf("ledger changed:\nbefore %+v\nafter  %+v", before, l)
			}
		})
	}

	shopper := "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()})
	lookalike := withClaims(func(c jwt.MapClaims) {
		c["cognito:groups"] = []string{"billing,admin", "administrators", `"admin"`, "[admin]", "Admin"}
	})
	admin := "Bearer " + good
	// A NUL or another control character in the sub (or a product's name) is refused by name,
	// before it reaches Postgres, which refuses NUL in text (a 500 before).
	controlSub := func(sub string) string {
		return "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
	}
	routing := []struct {
		name, method, path, auth, body string
		status                         int
		code                           shop.Code
		field                          string
	}{
		{"unknown path", "GET", "/nope", "", "", 404, shop.CodeNotFound, ""},
		{"unknown path with token", "POST", "/orders", shopper, `{}`, 404, shop.CodeNotFound, ""},
		{"product subpath", "GET", "/products/auth-tee/extra", "", "", 404, shop.CodeNotFound, ""},
		{"empty id segment", "GET", "/products/", "", "", 404, shop.CodeNotFound, ""},
		{"reservation id with slash", "DELETE", "/reservations/a%2Fb", shopper, "", 404, shop.CodeNotFound, ""},
		{"put products", "PUT", "/products", "", `{}`, 405, shop.CodeMethodNotAllowed, ""},
		{"delete product", "DELETE", "/products/auth-tee", "", "", 405, shop.CodeMethodNotAllowed, ""},
		{"post product", "POST", "/products/auth-tee", shopper, `{}`, 405, shop.CodeMethodNotAllowed, ""},
		{"patch reservations", "PATCH", "/reservations", shopper, `{}`, 405, shop.CodeMethodNotAllowed, ""},
		{"get admin product", "GET", "/admin/products/auth-tee", "", "", 405, shop.CodeMethodNotAllowed, ""},
		{"delete admin product", "DELETE", "/admin/products/auth-tee", shopper, "", 405, shop.CodeMethodNotAllowed, ""},
		{"get restock", "GET", "/admin/products/auth-tee/restock", "", "", 405, shop.CodeMethodNotAllowed, ""},
		{"shopper on admin route", "PUT", "/admin/products/auth-tee", shopper,
			`{"name":"Owned","price_cents":1,"currency":"usd","stock":1000,"max_per_user":1000}`, 403, shop.CodeForbidden, ""},
		{"shopper restocks", "POST", "/admin/products/auth-tee/restock", shopper, `{"delta":100}`, 403, shop.CodeForbidden, ""},
		{"shopper lists admin products", "GET", "/admin/products", shopper, "", 403, shop.CodeForbidden, ""},
		{"admin look-alike groups", "GET", "/admin/products", lookalike, "", 403, shop.CodeForbidden, ""},
		{"body over 64 KiB", "POST", "/reservations", shopper, reserve + strings.Repeat(" ", apigw.MaxBody), 413, shop.CodePayloadTooLarge, ""},
		{"quantity 0", "POST", "/reservations", shopper, `{"product_id":"auth-tee","quantity":0}`, 400, shop.CodeInvalidRequest, "quantity"},
		{"unknown product", "POST", "/reservations", shopper, `{"product_id":"ghost","quantity":1}`, 404, shop.CodeNotFound, ""},
		{"bad product id", "GET", "/products/Auth-Tee", "", "", 400, shop.CodeInvalidRequest, "id"},
		{"release unknown hold", "DELETE", "/reservations/r_aaaaaaaaaaaaaaaaaaaaaaaa", shopper, "", 404, shop.CodeNotFound, ""},
		{"NUL in sub reserves", "POST", "/reservations", controlSub("bob\x00"), reserve, 400, shop.CodeInvalidRequest, "sub"},
		{"NUL in sub lists holds", "GET", "/reservations", controlSub("\x00"), "", 400, shop.CodeInvalidRequest, "sub"},
		{"escape in sub releases", "DELETE", "/reservations/r_aaaaaaaaaaaaaaaaaaaaaaaa", controlSub("bob\x1b"), "", 400, shop.CodeInvalidRequest, "sub"},
		{"NUL in product name", "PUT", "/admin/products/auth-tee", admin,
			`{"name":"Owned\u0000","price_cents":1,"currency":"usd","stock":5,"max_per_user":3}`, 400, shop.CodeInvalidRequest, "name"},
		{"NUL in new product's name", "PUT", "/admin/products/auth-tee-nul", admin,
			`{"name":"\u0000","price_cents":1,"currency":"usd","stock":5,"max_per_user":3}`, 400, shop.CodeInvalidRequest, "name"},
		{"newline in product name", "PUT", "/admin/products/auth-tee", admin,
			`{"name":"Owned\nTee","price_cents":1,"currency":"usd","stock":5,"max_per_user":3}`, 400, shop.CodeInvalidRequest, "name"},
		{"empty order status filter", "GET", "/admin/orders?status=", admin, "", 400, shop.CodeInvalidRequest, "status"},
		{"empty order status filter twice", "GET", "/admin/orders?status=&status=", admin, "", 400, shop.CodeInvalidRequest, "status"},
		{"order status filter outside the enum", "GET", "/admin/orders?status=lost", admin, "", 400, shop.CodeInvalidRequest, "status"},
	}
	for _, tc := range routing {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, call(t, srv, tc.method, tc.path, tc.auth, tc.body), tc.status, tc.code, tc.field)
			if l := env.ReadLedger(t, "auth-tee"); !reflect.DeepEqual(l, before) {
				t.Errorf("ledger changed:\nbefore %+v\nafter  %+v", before, l)
			}
		})
	}

	t.Run("non-JSON body", func(t *testing.T) {
		t.Parallel()
		r := call(t, srv, "POST", "/reservations", shopper, "product_id=auth-tee&quantity=1", "Content-Type", "application/x-www-form-urlencoded")
		wantError(t, r, 415, shop.CodeUnsupportedMediaType, "")
	})
	t.Run("binary body", func(t *testing.T) {
		t.Parallel()
		r := call(t, srv, "POST", "/reservations", shopper, "\xff\xfe\x00{", "Content-Type", "application/json")
		wantError(t, r, 400, shop.CodeInvalidRequest, "")
	})
	t.Cleanup(func() { env.CheckLedger(t, "auth-tee", 5) })
}

func TestServerLocalRoutes(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	srv := startServer(t, env)

	t.Run("healthz", func(t *testing.T) {
		r := call(t, srv, "GET", "/healthz", "", "")
		if r.status != 200 {
			t.Fatalf("healthz %d: %s", r.status, r.body)
		}
		var out map[string]string
		decodeBody(t, r, &out)
		if out["status"] != "ok" {
			t.Fatalf("healthz answered %s", r.body)
		}
	})

	t.Run("token works", func(t *testing.T) {
		r := call(t, srv, "POST", "/_local/token", "", `{"sub":"alice","groups":["admin"],"ttl":"1h"}`)
		if r.status != 200 {
			t.Fatalf("token %d: %s", r.status, r.body)
		}
		var out struct {
			Token string `json:"token"`
		}
		decodeBody(t, r, &out)
		claims, err := verifyToken([]byte(testSecret), "Bearer "+out.Token)
		if err != nil {
			t.Fatalf("minted token does not verify: %v", err)
		}
		if claims["sub"] != "alice" || claims["cognito:groups"] != "[admin]" {
			t.Fatalf("claims %v", claims)
		}
		if r := call(t, srv, "GET", "/reservations", "Bearer "+out.Token, ""); r.status != 200 {
			t.Fatalf("GET /reservations with the minted token: %d %s", r.status, r.body)
		}
		if r := call(t, srv, "GET", "/admin/products", "Bearer "+out.Token, ""); r.status != 200 {
			t.Fatalf("GET /admin/products with a minted admin token: %d %s", r.status, r.body)
		}
		if _, err := verifyToken([]byte("other"), "Bearer "+out.Token); err == nil {
			t.Fatal("minted token verifies with another secret")
		}
	})

	t.Run("token default ttl", func(t *testing.T) {
		r := call(t, srv, "POST", "/_local/token", "", `{"sub":"bob"}`)
		if r.status != 200 {
			t.Fatalf("token %d: %s", r.status, r.body)
		}
		var out struct {
			Token string `json:"token"`
		}
		decodeBody(t, r, &out)
		claims, err := verifyToken([]byte(testSecret), "Bearer "+out.Token)
		if err != nil {
			t.Fatal(err)
		}
		if r := call(t, srv, "GET", "/admin/products", "Bearer "+out.Token, ""); r.status != 403 {
			t.Fatalf("a token without groups on an admin route: %d %s (claims %v)", r.status, r.body, claims)
		}
	})

	for _, tc := range []struct{ name, body, field string }{
		{"ttl not a duration", `{"sub":"alice","ttl":"banana"}`, "ttl"},
		{"ttl zero", `{"sub":"alice","ttl":"0s"}`, "ttl"},
		{"ttl negative", `{"sub":"alice","ttl":"-1h"}`, "ttl"},
		{"ttl over a week", `{"sub":"alice","ttl":"169h"}`, "ttl"},
		{"ttl a number", `{"sub":"alice","ttl":3600}`, "ttl"},
		{"no sub", `{"groups":["admin"]}`, "sub"},
		{"sub too long", `{"sub":"` + strings.Repeat("s", 129) + `"}`, "sub"},
		{"NUL in sub", `{"sub":"alice\u0000"}`, "sub"},
		{"newline in sub", `{"sub":"alice\nbob"}`, "sub"},
		{"unknown field", `{"sub":"alice","admin":true}`, "admin"},
		{"group with a space", `{"sub":"alice","groups":["not admin"]}`, "groups"},
		{"empty group", `{"sub":"alice","groups":[""]}`, "groups"},
		{"group too long", `{"sub":"alice","groups":["` + strings.Repeat("g", 129) + `"]}`, "groups"},
		{"malformed", `{"sub":`, ""},
	} {
		t.Run("token "+tc.name, func(t *testing.T) {
			wantError(t, call(t, srv, "POST", "/_local/token", "", tc.body), 400, shop.CodeInvalidRequest, tc.field)
		})
	}
	t.Run("token as text", func(t *testing.T) {
		r := call(t, srv, "POST", "/_local/token", "", `{"sub":"alice"}`, "Content-Type", "text/plain")
		wantError(t, r, 415, shop.CodeUnsupportedMediaType, "")
	})
	t.Run("local routes with the wrong method", func(t *testing.T) {
		for _, m := range [][2]string{{"GET", "/_local/token"}, {"POST", "/healthz"}} {
			wantError(t, call(t, srv, m[0], m[1], "", ""), 405, shop.CodeMethodNotAllowed, "")
		}
	})
}

func TestServerHappyPath(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	srv := startServer(t, env)
	token := func(body string) string {
		r := call(t, srv, "POST", "/_local/token", "", body)
		if r.status != 200 {
			t.Fatalf("token: %d %s", r.status, r.body)
		}
		var out struct {
			Token string `json:"token"`
		}
		decodeBody(t, r, &out)
		return "Bearer " + out.Token
	}
	admin := token(`{"sub":"admin-1","groups":["admin"],"ttl":"10m"}`)
	alice := token(`{"sub":"alice","ttl":"10m"}`)
	available := func() int64 {
		t.Helper()
		r := call(t, srv, "GET", "/products/tee", "", "")
		if r.status != 200 {
			t.Fatalf("GET /products/tee: %d %s", r.status, r.body)
		}
		var p shop.Product
		decodeBody(t, r, &p)
		return p.Available
	}

	r := call(t, srv, "PUT", "/admin/products/tee", admin, `{"name":"Tee","price_cents":2500,"currency":"usd","stock":5,"max_per_user":3}`)
	if r.status != 200 {
		t.Fatalf("PUT product: %d %s", r.status, r.body)
	}
	var ap shop.AdminProduct
	decodeBody(t, r, &ap)
	if ap.ID != "tee" || ap.Stock != 5 || ap.Available != 5 || ap.Held != 0 || ap.Currency != "usd" || ap.PriceCents != 2500 {
		t.Fatalf("PUT product answered %+v", ap)
	}
	if got := available(); got != 5 {
		t.Fatalf("available %d after create, want 5", got)
	}
	r = call(t, srv, "GET", "/products", "", "")
	var list struct {
		Products []shop.Product `json:"products"`
	}
	decodeBody(t, r, &list)
	if r.status != 200 || len(list.Products) != 1 || list.Products[0].ID != "tee" {
		t.Fatalf("GET /products: %d %s", r.status, r.body)
	}

	r = call(t, srv, "POST", "/reservations", alice, `{"product_id":"tee","quantity":2}`, "Idempotency-Key", "happy-1")
	if r.status != 201 {
		t.Fatalf("reserve: %d %s", r.status, r.body)
	}
	var res shop.Reserved
	decodeBody(t, r, &res)
	if res.ID == "" || res.ProductID != "tee" || res.Quantity != 2 || res.Status != shop.StatusReserved || res.Available != 3 {
		t.Fatalf("reserve answered %s", r.body)
	}
	if got := available(); got != 3 {
		t.Fatalf("available %d after reserving 2, want 3", got)
	}
	// The same key and body again: the same reservation, nothing more reserved.
	r = call(t, srv, "POST", "/reservations", alice, `{"quantity":2, "product_id":"tee"}`, "Idempotency-Key", "happy-1")
	var again shop.Reserved
	decodeBody(t, r, &again)
	if r.status != 201 || again.ID != res.ID {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	if got := available(); got != 3 {
		t.Fatalf("available %d after the replay, want 3", got)
	}
	env.CheckLedger(t, "tee", 5)

	r = call(t, srv, "GET", "/reservations", alice, "")
	var mine struct {
		Reservations []shop.Reservation `json:"reservations"`
	}
	decodeBody(t, r, &mine)
	if r.status != 200 || len(mine.Reservations) != 1 || mine.Reservations[0].ID != res.ID || mine.Reservations[0].Quantity != 2 {
		t.Fatalf("GET /reservations: %d %s", r.status, r.body)
	}
	r = call(t, srv, "GET", "/admin/products", admin, "")
	var adm struct {
		Products []shop.AdminProduct `json:"products"`
	}
	decodeBody(t, r, &adm)
	if r.status != 200 || len(adm.Products) != 1 || adm.Products[0].Held != 2 || adm.Products[0].Available+adm.Products[0].Held != adm.Products[0].Stock {
		t.Fatalf("GET /admin/products: %d %s", r.status, r.body)
	}

	r = call(t, srv, "DELETE", "/reservations/"+res.ID, alice, "")
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("release: %d %q", r.status, r.body)
	}
	if got := available(); got != 5 {
		t.Fatalf("available %d after release, want 5", got)
	}
	r = call(t, srv, "GET", "/reservations", alice, "")
	decodeBody(t, r, &mine)
	if r.status != 200 || len(mine.Reservations) != 0 || !strings.Contains(string(r.body), `"reservations":[]`) {
		t.Fatalf("GET /reservations after release: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "DELETE", "/reservations/"+res.ID, alice, ""); r.status != 204 {
		t.Fatalf("release again: %d %s", r.status, r.body)
	}
	l := env.CheckLedger(t, "tee", 5)
	if l.Available != 5 || l.HeldPG != 0 {
		t.Fatalf("ledger after release: %+v", l)
	}
}

// TestServerHostNames: the runner answers only the loopback names (any port) and those
// LOCAL_ALLOWED_HOSTS adds; any other Host (a rebound DNS name) gets 403 on every door,
// and mints nothing.
func TestServerHostNames(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	s := newServer(quiet, []byte(testSecret), func(context.Context) error { return nil },
		handler.Reserve(env.Shop, quiet), handler.Admin(env.Shop, quiet))
	s.servePages(web.Config{Local: true})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	send := func(host, method, path, body string) reply {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Host = host
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("Host %q: %v", host, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return reply{resp.StatusCode, resp.Header, b}
	}
	allowed := []string{"localhost", "localhost:8080", "LocalHost:1", "127.0.0.1", "127.0.0.1:8080", "[::1]", "[::1]:8080"}
	refused := []string{"attacker.example", "attacker.example:8080", "localhost.attacker.example", "127.0.0.1.nip.io:8080",
		"localhost.", "[::2]:8080", "0.0.0.0:8080", "127.0.0.2", "shop.test", "::1", "attacker.example:127.0.0.1", "[localhost]x"}
	for _, h := range allowed {
		if r := send(h, "GET", "/healthz", ""); r.status != 200 {
			t.Errorf("Host %q: healthz %d %s", h, r.status, r.body)
		}
	}
	for _, h := range refused {
		for _, c := range [][3]string{
			{"POST", "/_local/token", `{"sub":"mallory","groups":["admin"]}`},
			{"GET", "/healthz", ""}, {"GET", "/", ""}, {"GET", "/dashboard", ""}, {"GET", "/config.json", ""},
			{"GET", "/products", ""}, {"GET", "/assets/store.js", ""}, {"GET", "/nope", ""},
		} {
			r := send(h, c[0], c[1], c[2])
			wantError(t, r, 403, shop.CodeForbidden, "")
			if strings.Contains(string(r.body), "token") && !strings.Contains(string(r.body), "error") {
				t.Errorf("Host %q minted a token: %s", h, r.body)
			}
		}
	}
	s.allowHosts("Shop.Test, 192.168.1.20")
	for _, h := range []string{"shop.test", "shop.test:8080", "192.168.1.20:8080", "localhost:8080"} {
		if r := send(h, "GET", "/healthz", ""); r.status != 200 {
			t.Errorf("allowed Host %q: healthz %d %s", h, r.status, r.body)
		}
	}
	if r := send("attacker.example", "GET", "/healthz", ""); r.status != 403 {
		t.Errorf("attacker.example with an allow list: %d", r.status)
	}
}

// TestServerSecurityHeaders: every answer (page, asset, config, API, error, refused host)
// carries the pages' security headers; the policy forbids framing and inline code, allows
// the runner's own WebSocket, and names Stripe only when a publishable key is configured.
func TestServerSecurityHeaders(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	for _, key := range []string{"", "pk_test_123"} {
		s := newServer(quiet, []byte(testSecret), func(context.Context) error { return nil }, handler.Reserve(env.Shop, quiet))
		s.servePages(web.Config{Local: true, StripePublishableKey: key})
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		host := strings.TrimPrefix(srv.URL, "http://")
		for _, c := range [][2]string{{"GET", "/"}, {"GET", "/dashboard"}, {"GET", "/assets/store.js"}, {"GET", "/config.json"},
			{"GET", "/products"}, {"GET", "/nope"}, {"POST", "/reservations"}, {"GET", "/healthz"}} {
			r := call(t, srv, c[0], c[1], "", "")
			h := r.header
			for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
				if got := h.Get(k); got != want {
					t.Errorf("key %q, %s %s: %s = %q, want %q", key, c[0], c[1], k, got, want)
				}
			}
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "style-src 'self';",
				"connect-src 'self' ws://" + host + " wss://" + host} {
				if !strings.Contains(csp, want) {
					t.Errorf("key %q, %s %s: CSP %q lacks %q", key, c[0], c[1], csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "*") {
				t.Errorf("CSP %q allows inline code or wildcards", csp)
			}
			if hasStripe := strings.Contains(csp, "stripe.com"); hasStripe != (key != "") {
				t.Errorf("key %q: CSP %q names Stripe: %v", key, csp, hasStripe)
			}
			if h.Get("Strict-Transport-Security") != "" {
				t.Errorf("HSTS over plain HTTP: %q", h.Get("Strict-Transport-Security"))
			}
		}
		if key != "" {
			csp := call(t, srv, "GET", "/", "", "").header.Get("Content-Security-Policy")
			for _, want := range []string{"script-src 'self' https://js.stripe.com;", "frame-src https://js.stripe.com https://hooks.stripe.com;", "https://api.stripe.com"} {
				if !strings.Contains(csp, want) {
					t.Errorf("with a publishable key the CSP %q lacks %q", csp, want)
				}
			}
		}
	}
}
