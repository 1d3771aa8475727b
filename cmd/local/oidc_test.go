package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"lastunit/shared/handler"
	"lastunit/shared/jwtauth"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// testKey is one RSA key for every test's provider (generating one per test costs time).
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// startOIDCServer is startServer plus the runner's OpenID provider, its issuer the server's URL;
// its traffic is held to the reference like every runner test's.
func startOIDCServer(t *testing.T, env *testenv.Env) (*httptest.Server, *server) {
	t.Helper()
	s := newServer(quiet, []byte(testSecret), func(ctx context.Context) error { return env.Pool.Ping(ctx) },
		handler.Reserve(env.Shop, quiet), handler.Admin(env.Shop, quiet))
	srv := httptest.NewServer(withContract(t, s)) // every exchange checked against web/api/openapi.yaml
	t.Cleanup(srv.Close)
	s.serveOIDC(newOIDCProviderWithKey(srv.URL, testKey()))
	return srv, s
}

// noRedirects is a client that hands back redirects instead of following them.
func noRedirects(srv *httptest.Server) *http.Client {
	c := *srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// pkcePair is a code verifier and its S256 challenge.
func pkcePair() (verifier, challenge string) {
	verifier = randomToken() // 43 characters of base64url
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorizeCode signs user in on the provider's page (POST /oauth2/authorize, as its form
// does) and returns the code from the redirect, after checking state came back.
func authorizeCode(t *testing.T, srv *httptest.Server, client, redirect, challenge, user string, admin bool) string {
	t.Helper()
	form := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "state": {"st-1"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"openid email profile"}, "username": {user}}
	if admin {
		form.Set("admin", "1")
		form.Set("admin_secret", testSecret)
	}
	resp, err := noRedirects(srv).PostForm(srv.URL+"/oauth2/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("authorize: status %d, want 303", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirect+"?") {
		t.Fatalf("authorize redirected to %q, want %s?…", resp.Header.Get("Location"), redirect)
	}
	if loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize redirect %q: want code and state st-1", loc)
	}
	return loc.Query().Get("code")
}

type tokenReply struct {
	status                                    int
	AccessToken, IDToken, RefreshToken, Error string
	ExpiresIn                                 int
}

func postToken(t *testing.T, srv *httptest.Server, form url.Values) tokenReply {
	t.Helper()
	resp, err := srv.Client().PostForm(srv.URL+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("token answer: %v", err)
	}
	str := func(k string) string { s, _ := raw[k].(string); return s }
	n, _ := raw["expires_in"].(float64)
	return tokenReply{status: resp.StatusCode, AccessToken: str("access_token"), IDToken: str("id_token"),
		RefreshToken: str("refresh_token"), Error: str("error"), ExpiresIn: int(n)}
}

// signInOIDC runs the whole code flow with PKCE for user and returns the tokens.
func signInOIDC(t *testing.T, srv *httptest.Server, client, user string, admin bool) tokenReply {
	t.Helper()
	redirect := srv.URL + localClients[client]
	verifier, challenge := pkcePair()
	code := authorizeCode(t, srv, client, redirect, challenge, user, admin)
	r := postToken(t, srv, url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {code},
		"redirect_uri": {redirect}, "code_verifier": {verifier}})
	if r.status != http.StatusOK || r.AccessToken == "" || r.IDToken == "" {
		t.Fatalf("token exchange: %d %+v", r.status, r)
	}
	return r
}

func unverifiedClaims(t *testing.T, raw string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOIDCDiscoveryAndJWKS: the discovery document names the provider's endpoints on its
// issuer, and the JWKS's key verifies the tokens it issues.
func TestOIDCDiscoveryAndJWKS(t *testing.T) {
	env := testenv.NewEnv(t)
	srv, _ := startOIDCServer(t, env)
	var d map[string]any
	decodeBody(t, call(t, srv, "GET", "/.well-known/openid-configuration", "", ""), &d)
	for k, want := range map[string]string{
		"issuer": srv.URL, "authorization_endpoint": srv.URL + "/oauth2/authorize", "token_endpoint": srv.URL + "/oauth2/token",
		"jwks_uri": srv.URL + "/.well-known/jwks.json", "end_session_endpoint": srv.URL + "/logout",
		"revocation_endpoint": srv.URL + "/oauth2/revoke",
	} {
		if d[k] != want {
			t.Errorf("discovery %s = %v, want %s", k, d[k], want)
		}
	}
	if m, _ := d["code_challenge_methods_supported"].([]any); len(m) != 1 || m[0] != "S256" {
		t.Errorf("code_challenge_methods_supported = %v, want [S256]", d["code_challenge_methods_supported"])
	}
	var set struct {
		Keys []struct{ Kty, Kid, Alg, Use, N, E string }
	}
	decodeBody(t, call(t, srv, "GET", "/.well-known/jwks.json", "", ""), &set)
	if len(set.Keys) != 1 || set.Keys[0].Kty != "RSA" || set.Keys[0].Alg != "RS256" || set.Keys[0].Use != "sig" {
		t.Fatalf("jwks = %+v", set)
	}
	k := set.Keys[0]
	n, _ := base64.RawURLEncoding.DecodeString(k.N)
	e, _ := base64.RawURLEncoding.DecodeString(k.E)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	tok := signInOIDC(t, srv, StoreClientID, "alice", false)
	for _, raw := range []string{tok.AccessToken, tok.IDToken} {
		parsed, err := jwt.Parse(raw, func(t *jwt.Token) (any, error) {
			if t.Header["kid"] != k.Kid {
				return nil, jwt.ErrTokenUnverifiable
			}
			return pub, nil
		}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(srv.URL))
		if err != nil || !parsed.Valid {
			t.Fatalf("a token does not verify with the published key: %v", err)
		}
	}
}

// TestOIDCCodeFlow: the code flow with PKCE gives Cognito-shaped tokens that the runner's
// authorizer accepts on the routes of their client only, and the WebSocket's check accepts;
// the admin box puts the user in the admin group; a refresh token gives fresh tokens.
func TestOIDCCodeFlow(t *testing.T) {
	env := testenv.NewEnv(t)
	srv, s := startOIDCServer(t, env)

	// The sign-in page: a form with the request's parameters, a user name and the admin box.
	r := call(t, srv, "GET", "/oauth2/authorize?"+url.Values{"response_type": {"code"}, "client_id": {StoreClientID},
		"redirect_uri": {srv.URL + "/"}, "state": {"s"}, "code_challenge": {strings.Repeat("a", 43)},
		"code_challenge_method": {"S256"}, "scope": {"openid"}}.Encode(), "", "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `name="username"`) || !strings.Contains(string(r.body), `name="admin"`) {
		t.Fatalf("sign-in page: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "<script") || strings.Contains(string(r.body), "style=") {
		t.Fatal("the sign-in page has inline script or style")
	}

	alice := signInOIDC(t, srv, StoreClientID, "alice", false)
	ac, ic := unverifiedClaims(t, alice.AccessToken), unverifiedClaims(t, alice.IDToken)
	for _, c := range []struct {
		claims     jwt.MapClaims
		key, value string
	}{
		{ac, "sub", "alice"}, {ac, "token_use", "access"}, {ac, "client_id", StoreClientID}, {ac, "iss", srv.URL}, {ac, "username", "alice"},
		{ic, "sub", "alice"}, {ic, "token_use", "id"}, {ic, "aud", StoreClientID}, {ic, "iss", srv.URL}, {ic, "cognito:username", "alice"},
	} {
		if c.claims[c.key] != c.value {
			t.Errorf("%s = %v, want %s", c.key, c.claims[c.key], c.value)
		}
	}
	if exp, _ := ac.GetExpirationTime(); exp == nil || time.Until(exp.Time) < 50*time.Minute || alice.ExpiresIn != 3600 {
		t.Errorf("access token exp %v, expires_in %d: want an hour", exp, alice.ExpiresIn)
	}
	if _, ok := ac["cognito:groups"]; ok {
		t.Error("a shopper's token carries cognito:groups")
	}

	// The API accepts the shopper's access token on a shopper route, not on an admin route
	// (the stack's admin routes take only the admins' pool).
	auth := "Bearer " + alice.AccessToken
	if r := call(t, srv, "GET", "/reservations", auth, ""); r.status != http.StatusOK {
		t.Fatalf("GET /reservations with the shopper's token: %d %s", r.status, r.body)
	}
	wantError(t, call(t, srv, "GET", "/admin/products", auth, ""), http.StatusUnauthorized, shop.CodeUnauthenticated, "")

	// An admin signs in on the dashboard's client: the admin group, the admin routes.
	ada := signInOIDC(t, srv, AdminClientID, "ada", true)
	if g, _ := unverifiedClaims(t, ada.AccessToken)["cognito:groups"].([]any); len(g) != 1 || g[0] != "admin" {
		t.Fatalf("admin's cognito:groups = %v", g)
	}
	if r := call(t, srv, "GET", "/admin/products", "Bearer "+ada.AccessToken, ""); r.status != http.StatusOK {
		t.Fatalf("GET /admin/products with the admin's token: %d %s", r.status, r.body)
	}
	// The dashboard's client without the admin box: the function's group check says 403.
	bob := signInOIDC(t, srv, AdminClientID, "bob", false)
	wantError(t, call(t, srv, "GET", "/admin/products", "Bearer "+bob.AccessToken, ""), http.StatusForbidden, shop.CodeForbidden, "")
	// HS256 tokens (POST /_local/token) keep working on every route.
	if r := call(t, srv, "GET", "/admin/products", bearer(t, "ada", "admin"), ""); r.status != http.StatusOK {
		t.Fatalf("HS256 admin token: %d %s", r.status, r.body)
	}

	// The WebSocket's check (jwtauth against the provider's JWKS) accepts the access token.
	ws := s.wsTokens(jwtauth.HS256([]byte(testSecret)))
	if id, err := ws.Verify(context.Background(), alice.AccessToken); err != nil || id.UserID != "alice" {
		t.Fatalf("ws token check: %v %v", id, err)
	}
	if id, err := ws.Verify(context.Background(), strings.TrimPrefix(bearer(t, "carol"), "Bearer ")); err != nil || id.UserID != "carol" {
		t.Fatalf("ws HS256 token check: %v %v", id, err)
	}

	// A refresh token gives fresh tokens for the same user, to its own client only.
	other := postToken(t, srv, url.Values{"grant_type": {"refresh_token"}, "client_id": {AdminClientID}, "refresh_token": {alice.RefreshToken}})
	if other.status != http.StatusBadRequest || other.Error != "invalid_grant" {
		t.Fatalf("refresh with another client: %+v", other)
	}
	fresh := postToken(t, srv, url.Values{"grant_type": {"refresh_token"}, "client_id": {StoreClientID}, "refresh_token": {alice.RefreshToken}})
	if fresh.status != http.StatusOK || unverifiedClaims(t, fresh.AccessToken)["sub"] != "alice" {
		t.Fatalf("refresh: %+v", fresh)
	}
	if r := call(t, srv, "GET", "/reservations", "Bearer "+fresh.AccessToken, ""); r.status != http.StatusOK {
		t.Fatalf("refreshed token: %d %s", r.status, r.body)
	}

	// Sign-out goes back to the client's registered page only.
	c := noRedirects(srv)
	resp, err := c.Get(srv.URL + "/logout?" + url.Values{"client_id": {StoreClientID}, "logout_uri": {srv.URL + "/"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != srv.URL+"/" {
		t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = c.Get(srv.URL + "/logout?" + url.Values{"client_id": {StoreClientID}, "logout_uri": {"https://evil.example/"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("logout to an unregistered URI: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestOIDCTokenRefusals: the token endpoint refuses a wrong verifier, a code used twice, a
// redirect URI or client other than the authorization request's, and an unknown grant; the
// authorize endpoint never redirects to an unregistered place and insists on PKCE.
func TestOIDCTokenRefusals(t *testing.T) {
	env := testenv.NewEnv(t)
	srv, _ := startOIDCServer(t, env)
	redirect := srv.URL + "/"
	fresh := func() (code, verifier string) {
		verifier, challenge := pkcePair()
		return authorizeCode(t, srv, StoreClientID, redirect, challenge, "alice", false), verifier
	}
	exchange := func(code, client, redirect, verifier string) tokenReply {
		return postToken(t, srv, url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {code},
			"redirect_uri": {redirect}, "code_verifier": {verifier}})
	}
	for _, tc := range []struct {
		name string
		try  func() tokenReply
		want string
	}{
		{"wrong verifier", func() tokenReply {
			code, _ := fresh()
			v, _ := pkcePair()
			return exchange(code, StoreClientID, redirect, v)
		}, "invalid_grant"},
		{"no verifier", func() tokenReply { code, _ := fresh(); return exchange(code, StoreClientID, redirect, "") }, "invalid_grant"},
		{"reused code", func() tokenReply {
			code, v := fresh()
			if r := exchange(code, StoreClientID, redirect, v); r.status != http.StatusOK {
				t.Fatalf("first exchange: %+v", r)
			}
			return exchange(code, StoreClientID, redirect, v)
		}, "invalid_grant"},
		{"code retried after a wrong verifier", func() tokenReply {
			code, v := fresh()
			w, _ := pkcePair()
			exchange(code, StoreClientID, redirect, w)
			return exchange(code, StoreClientID, redirect, v)
		}, "invalid_grant"},
		{"wrong redirect_uri", func() tokenReply { code, v := fresh(); return exchange(code, StoreClientID, srv.URL+"/dashboard", v) }, "invalid_grant"},
		{"another client's code", func() tokenReply { code, v := fresh(); return exchange(code, AdminClientID, srv.URL+"/dashboard", v) }, "invalid_grant"},
		{"unknown client", func() tokenReply { code, v := fresh(); return exchange(code, "nobody", redirect, v) }, "invalid_client"},
		{"unknown code", func() tokenReply { _, v := pkcePair(); return exchange(randomToken(), StoreClientID, redirect, v) }, "invalid_grant"},
		{"password grant", func() tokenReply {
			return postToken(t, srv, url.Values{"grant_type": {"password"}, "client_id": {StoreClientID}, "username": {"a"}, "password": {"b"}})
		}, "unsupported_grant_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.try()
			if r.status != http.StatusBadRequest || r.Error != tc.want || r.AccessToken != "" {
				t.Fatalf("got %d %q (token %t), want 400 %s", r.status, r.Error, r.AccessToken != "", tc.want)
			}
		})
	}

	// Authorize: an unregistered redirect URI or client gets 400, never a redirect there;
	// without PKCE S256 the browser goes back with invalid_request.
	_, challenge := pkcePair()
	base := url.Values{"response_type": {"code"}, "client_id": {StoreClientID}, "redirect_uri": {redirect}, "state": {"s"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"openid"}, "username": {"alice"}}
	for _, tc := range []struct {
		name, key, value string
		status           int
		wantError        string
	}{
		{"foreign redirect", "redirect_uri", "https://evil.example/", http.StatusBadRequest, ""},
		{"dashboard for the store client", "redirect_uri", srv.URL + "/dashboard", http.StatusBadRequest, ""},
		{"unknown client", "client_id", "nobody", http.StatusBadRequest, ""},
		{"plain PKCE", "code_challenge_method", "plain", http.StatusSeeOther, "invalid_request"},
		{"no challenge", "code_challenge", "", http.StatusSeeOther, "invalid_request"},
		{"token response", "response_type", "token", http.StatusSeeOther, "unsupported_response_type"},
		{"bad user name", "username", "<script>", http.StatusBadRequest, ""},
	} {
		t.Run("authorize "+tc.name, func(t *testing.T) {
			form := url.Values{}
			for k, v := range base {
				form[k] = v
			}
			form.Set(tc.key, tc.value)
			resp, err := noRedirects(srv).PostForm(srv.URL+"/oauth2/authorize", form)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (Location %q), want %d: %s", resp.StatusCode, loc, tc.status, body)
			}
			if tc.status == http.StatusSeeOther {
				u, _ := url.Parse(loc)
				if !strings.HasPrefix(loc, redirect+"?") || u.Query().Get("error") != tc.wantError || u.Query().Get("code") != "" {
					t.Fatalf("redirect %q, want %s?error=%s", loc, redirect, tc.wantError)
				}
			} else if loc != "" {
				t.Fatalf("redirected to %q", loc)
			}
		})
	}
}

// TestOIDCForgedTokensRefused: RS256 tokens not signed by the provider's key, or not of its
// issuer, or expired, or for no client of the route, get 401, on the API and the WebSocket.
func TestOIDCForgedTokensRefused(t *testing.T) {
	env := testenv.NewEnv(t)
	srv, s := startOIDCServer(t, env)
	real := signInOIDC(t, srv, StoreClientID, "alice", false)
	good := unverifiedClaims(t, real.AccessToken)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(key *rsa.PrivateKey, kid string, edit func(jwt.MapClaims)) string {
		c := jwt.MapClaims{}
		for k, v := range good {
			c[k] = v
		}
		if edit != nil {
			edit(c)
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = kid
		raw, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	kid := s.oidc.kid
	// A token with the published key's kid, but HS256 keyed by the public key's bytes.
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&testKey().PublicKey))})
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, good)
	confused.Header["kid"] = kid
	confusedRaw, _ := confused.SignedString(pubPEM)
	for _, tc := range []struct{ name, raw string }{
		{"another key, same kid", signed(other, kid, nil)},
		{"another key and kid", signed(other, "other", nil)},
		{"another issuer", signed(testKey(), kid, func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })},
		{"expired", signed(testKey(), kid, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })},
		{"no exp", signed(testKey(), kid, func(c jwt.MapClaims) { delete(c, "exp") })},
		{"another client", signed(testKey(), kid, func(c jwt.MapClaims) { c["client_id"] = "someone-else" })},
		{"HS256 with the public key", confusedRaw},
		{"tampered payload", func() string {
			parts := strings.Split(real.AccessToken, ".")
			parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","iss":"` + srv.URL + `","client_id":"` + StoreClientID + `","token_use":"access","exp":9999999999}`))
			return strings.Join(parts, ".")
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, call(t, srv, "GET", "/reservations", "Bearer "+tc.raw, ""), http.StatusUnauthorized, shop.CodeUnauthenticated, "")
			if _, err := s.wsTokens(jwtauth.HS256([]byte(testSecret))).Verify(context.Background(), tc.raw); err == nil {
				t.Fatal("the WebSocket's check accepted it")
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestOIDCKeyFromEnvironment: LOCAL_OIDC_KEY may hold the signing key as PKCS#1 or PKCS#8
// PEM (the same key, the same kid, tokens that verify across restarts); anything else is an
// error at start, never a silent fresh key.
func TestOIDCKeyFromEnvironment(t *testing.T) {
	t.Parallel()
	key := testKey()
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	pkcs8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))}))
	want := newOIDCProviderWithKey("http://x", key).kid
	for _, tc := range []struct {
		name, pem string
		ok        bool
	}{
		{"PKCS#1", pkcs1, true},
		{"PKCS#8", pkcs8, true},
		{"not PEM", "secret", false},
		{"a public key", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&key.PublicKey))})), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := newOIDCProvider("http://x", tc.pem)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%t", err, tc.ok)
			}
			if tc.ok && p.kid != want {
				t.Fatalf("kid %s, want %s (the same key)", p.kid, want)
			}
		})
	}
	fresh, err := newOIDCProvider("http://x", "")
	if err != nil || fresh.kid == want {
		t.Fatalf("no key: %v, kid %s (want a fresh key)", err, fresh.kid)
	}
}

// TestOIDCAdminBoxNeedsTheSecret: reaching the runner is not enough to become an admin. The
// sign-in page's admin box grants the admin group only with the runner's secret
// (LOCAL_JWT_SECRET) typed in beside it; without it, or with another value, the sign-in is
// refused (the page again, no code), and a provider with no secret never grants it.
func TestOIDCAdminBoxNeedsTheSecret(t *testing.T) {
	env := testenv.NewEnv(t)
	srv, s := startOIDCServer(t, env)
	redirect := srv.URL + localClients[AdminClientID]
	_, challenge := pkcePair()
	post := func(user string, extra url.Values) *http.Response {
		t.Helper()
		form := url.Values{"response_type": {"code"}, "client_id": {AdminClientID}, "redirect_uri": {redirect}, "state": {"st"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"openid"}, "username": {user}}
		for k, v := range extra {
			form[k] = v
		}
		resp, err := noRedirects(srv).PostForm(srv.URL+"/oauth2/authorize", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, tc := range []struct {
		name  string
		extra url.Values
	}{
		{"no secret", url.Values{"admin": {"1"}}},
		{"empty secret", url.Values{"admin": {"1"}, "admin_secret": {""}}},
		{"wrong secret", url.Values{"admin": {"1"}, "admin_secret": {"guess"}}},
		{"the default secret", url.Values{"admin": {"1"}, "admin_secret": {DefaultJWTSecret}}},
		{"the secret's prefix", url.Values{"admin": {"1"}, "admin_secret": {testSecret[:len(testSecret)-1]}}},
	} {
		if resp := post("mallory", tc.extra); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("%s: %d to %q, want 400 and the page again", tc.name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	s.oidc.mu.Lock()
	codes := len(s.oidc.codes)
	s.oidc.mu.Unlock()
	if codes != 0 {
		t.Fatalf("%d codes issued for refused sign-ins", codes)
	}
	// The secret, and the box, make an admin; the secret alone does not.
	ada := signInOIDC(t, srv, AdminClientID, "ada", true)
	if r := call(t, srv, "GET", "/admin/products", "Bearer "+ada.AccessToken, ""); r.status != http.StatusOK {
		t.Fatalf("admin with the secret: %d %s", r.status, r.body)
	}
	if resp := post("bob", url.Values{"admin_secret": {testSecret}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the secret without the box: %d", resp.StatusCode)
	}
	// A provider without a secret grants admin to no one.
	p := newOIDCProviderWithKey(srv.URL, testKey())
	if p.adminAllowed("") || p.adminAllowed(testSecret) {
		t.Fatal("a provider without a secret lets the admin box through")
	}
}

// revokeToken posts RFC 7009's revocation request and returns the status and the OAuth error.
func revokeToken(t *testing.T, srv *httptest.Server, form url.Values) (int, string) {
	t.Helper()
	resp, err := srv.Client().PostForm(srv.URL+"/oauth2/revoke", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&e) //nolint:errcheck // 200 has no body
	return resp.StatusCode, e.Error
}

// TestOIDCRevoke: signing out revokes the refresh token (/oauth2/revoke, as Cognito's): the
// provider forgets it at once and refreshing with it is invalid_grant; the client's other
// sessions and another client's token are untouched; bad requests are refused.
func TestOIDCRevoke(t *testing.T) {
	env := testenv.NewEnv(t)
	srv, _ := startOIDCServer(t, env)
	refresh := func(client, tok string) tokenReply {
		t.Helper()
		return postToken(t, srv, url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {tok}})
	}
	alice := signInOIDC(t, srv, StoreClientID, "alice", false)
	other := signInOIDC(t, srv, StoreClientID, "alice", false) // another tab's session
	ada := signInOIDC(t, srv, AdminClientID, "ada", true)

	// Bad requests change nothing.
	for _, tc := range []struct {
		name string
		form url.Values
		want string
	}{
		{"no client", url.Values{"token": {alice.RefreshToken}}, "invalid_client"},
		{"unknown client", url.Values{"token": {alice.RefreshToken}, "client_id": {"nope"}}, "invalid_client"},
		{"no token", url.Values{"client_id": {StoreClientID}}, "invalid_request"},
		{"another client's token", url.Values{"token": {alice.RefreshToken}, "client_id": {AdminClientID}}, "unauthorized_client"},
	} {
		if status, code := revokeToken(t, srv, tc.form); status != http.StatusBadRequest || code != tc.want {
			t.Errorf("%s: %d %q, want 400 %s", tc.name, status, code, tc.want)
		}
	}
	if r := refresh(StoreClientID, alice.RefreshToken); r.status != http.StatusOK {
		t.Fatalf("refused revocations revoked the token: %d %s", r.status, r.Error)
	}

	if status, _ := revokeToken(t, srv, url.Values{"token": {alice.RefreshToken}, "client_id": {StoreClientID}}); status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	if r := refresh(StoreClientID, alice.RefreshToken); r.status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Fatalf("refresh with a revoked token: %d %q, want 400 invalid_grant", r.status, r.Error)
	}
	// Again, and an unknown token: 200 (worth nothing already).
	for _, tok := range []string{alice.RefreshToken, "never-issued"} {
		if status, _ := revokeToken(t, srv, url.Values{"token": {tok}, "client_id": {StoreClientID}}); status != http.StatusOK {
			t.Errorf("revoke %q: %d, want 200", tok, status)
		}
	}
	for _, s := range []struct {
		client string
		r      tokenReply
	}{{StoreClientID, other}, {AdminClientID, ada}} {
		if r := refresh(s.client, s.r.RefreshToken); r.status != http.StatusOK {
			t.Errorf("another session (%s) was revoked too: %d %q", s.client, r.status, r.Error)
		}
	}
	// A form that is not one is refused.
	resp, err := srv.Client().Post(srv.URL+"/oauth2/revoke", "application/json", strings.NewReader(`{"token":"x","client_id":"`+StoreClientID+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("JSON body: %d, want 400", resp.StatusCode)
	}
}
