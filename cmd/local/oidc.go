package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"lastunit/shared/apigw"
	"lastunit/shared/handler"
	"lastunit/shared/jwtauth"
	"lastunit/web"
)

// The runner's OpenID provider stands in for Cognito's managed login: the same endpoint
// shapes (discovery, /oauth2/authorize, /oauth2/token, JWKS, /logout), the authorization code
// flow with PKCE (S256) for public clients, RS256 tokens with Cognito's claims. Like the stack,
// it has two app clients: the storefront's (the shoppers' pool in AWS) and the dashboard's
// (the admins' pool), and the runner's authorizer lets each client's tokens through only where
// the stack's authorizers would (see checkToken).

// The runner's app clients and where their pages live (the redirect and sign-out URIs are
// these paths on the origin the page was opened on).
const (
	StoreClientID = "lastunit-local-store"
	AdminClientID = "lastunit-local-admin"
)

var localClients = map[string]string{StoreClientID: "/", AdminClientID: "/dashboard"}

// Lifetimes, as the stack's app clients have them (Cognito's code lives 5 minutes).
const (
	codeTTL    = 5 * time.Minute
	refreshTTL = 30 * 24 * time.Hour
	maxPending = 10_000 // codes or refresh tokens held; past that all are forgotten (pages sign in again)
)

// oidcProvider is the runner's OpenID provider.
type oidcProvider struct {
	issuer string
	key    *rsa.PrivateKey
	kid    string
	now    func() time.Time

	// adminSecret is what the sign-in page's admin box needs typed in before it grants the
	// admin group: the runner's LOCAL_JWT_SECRET (serveOIDC sets it). Empty: never.
	adminSecret []byte

	mu       sync.Mutex
	ttl      time.Duration // the access and ID tokens' lifetime (one hour, as the stack's clients)
	codes    map[string]authCode
	refreshs map[string]grant
}

// grant is who signed in, for which client.
type grant struct {
	client, sub, username string
	groups                []string
	scope                 string
	exp                   time.Time
}

// authCode is an issued authorization code: single use, for one redirect URI and PKCE challenge.
type authCode struct {
	grant
	redirect, challenge, nonce string
}

// newOIDCProvider returns a provider for issuer signing with key (a fresh 2048-bit key when
// pemKey is empty; otherwise an RSA private key in PEM, PKCS#1 or PKCS#8).
func newOIDCProvider(issuer, pemKey string) (*oidcProvider, error) {
	var key *rsa.PrivateKey
	if pemKey == "" {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate the OpenID signing key: %w", err)
		}
		key = k
	} else {
		k, err := parseRSAKey(pemKey)
		if err != nil {
			return nil, fmt.Errorf("LOCAL_OIDC_KEY: %w", err)
		}
		key = k
	}
	return newOIDCProviderWithKey(issuer, key), nil
}

func newOIDCProviderWithKey(issuer string, key *rsa.PrivateKey) *oidcProvider {
	sum := sha256.Sum256(x509.MarshalPKCS1PublicKey(&key.PublicKey))
	return &oidcProvider{
		issuer: strings.TrimRight(issuer, "/"), key: key, kid: base64.RawURLEncoding.EncodeToString(sum[:12]),
		ttl: time.Hour, now: time.Now, codes: map[string]authCode{}, refreshs: map[string]grant{},
	}
}

func parseRSAKey(s string) (*rsa.PrivateKey, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, errors.New("not PEM")
	}
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, errors.New("neither a PKCS#1 nor a PKCS#8 private key")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rk, nil
}

// setTTL sets the lifetime of the tokens issued from now on.
func (p *oidcProvider) setTTL(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ttl = d
}

// serveOIDC mounts the provider's endpoints on the runner; the admin box of its sign-in page
// asks for the runner's secret (LOCAL_JWT_SECRET), so that reaching the runner is not enough
// to become an admin.
func (s *server) serveOIDC(p *oidcProvider) {
	s.oidc = p
	p.adminSecret = s.secret
	s.handle("GET /.well-known/openid-configuration", p.discovery)
	s.handle("GET /.well-known/jwks.json", p.jwks)
	s.mux.HandleFunc("/oauth2/authorize", p.authorize) // GET shows the page, POST signs in
	s.handle("POST /oauth2/token", p.token)
	s.handle("POST /oauth2/revoke", p.revoke)
	s.handle("GET /logout", p.logout)
}

// authConfig is what the pages are told about signing in locally: the same keys as the
// stack's config.json, with paths on the pages' own origin.
func authConfig(client string) *web.AuthConfig {
	return &web.AuthConfig{
		AuthorizeURL: "/oauth2/authorize", TokenURL: "/oauth2/token", LogoutURL: "/logout",
		ClientID: client, RedirectURI: localClients[client], LogoutURI: localClients[client], Scope: "openid email profile",
	}
}

func (p *oidcProvider) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.issuer,
		"authorization_endpoint":                p.issuer + "/oauth2/authorize",
		"token_endpoint":                        p.issuer + "/oauth2/token",
		"jwks_uri":                              p.issuer + "/.well-known/jwks.json",
		"end_session_endpoint":                  p.issuer + "/logout",
		"revocation_endpoint":                   p.issuer + "/oauth2/revoke",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"code_challenge_methods_supported":      []string{"S256"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "token_use", "client_id", "cognito:groups", "cognito:username", "username", "email"},
	})
}

func (p *oidcProvider) jwks(w http.ResponseWriter, r *http.Request) {
	pub := p.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": p.kid,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b) //nolint:errcheck
}

// oauthError is RFC 6749's error answer of the token endpoint.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// registeredURI reports whether uri is client's redirect (or sign-out) URI on the origin the
// request came to: the page's own origin, its path exactly, no query or fragment.
func registeredURI(r *http.Request, client, uri string) bool {
	path, ok := localClients[client]
	if !ok {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return uri == scheme+"://"+r.Host+path
}

var userName = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// authorizeParams are the authorization request's parameters (query on GET, form on POST).
type authorizeParams struct {
	ResponseType, ClientID, RedirectURI, State, Challenge, Method, Scope, Nonce string
}

func readAuthorize(v url.Values) authorizeParams {
	return authorizeParams{
		ResponseType: v.Get("response_type"), ClientID: v.Get("client_id"), RedirectURI: v.Get("redirect_uri"),
		State: v.Get("state"), Challenge: v.Get("code_challenge"), Method: v.Get("code_challenge_method"),
		Scope: v.Get("scope"), Nonce: v.Get("nonce"),
	}
}

// authorize is /oauth2/authorize: GET shows the runner's sign-in page, POST signs in and
// redirects back with code and state. A request with an unknown client or redirect URI gets
// a plain 400 (never a redirect to an unchecked place); other bad requests go back to the
// redirect URI with RFC 6749's error.
func (p *oidcProvider) authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		q = r.PostForm
	}
	a := readAuthorize(q)
	if _, ok := localClients[a.ClientID]; !ok {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	if !registeredURI(r, a.ClientID, a.RedirectURI) {
		http.Error(w, "redirect_uri is not registered for this client", http.StatusBadRequest)
		return
	}
	back := func(vals url.Values) {
		if a.State != "" {
			vals.Set("state", a.State)
		}
		http.Redirect(w, r, a.RedirectURI+"?"+vals.Encode(), http.StatusSeeOther)
	}
	switch {
	case a.ResponseType != "code":
		back(url.Values{"error": {"unsupported_response_type"}})
		return
	case a.Method != "S256" || len(a.Challenge) != 43:
		back(url.Values{"error": {"invalid_request"}, "error_description": {"PKCE with code_challenge_method S256 is required"}})
		return
	case !hasScope(a.Scope, "openid"):
		back(url.Values{"error": {"invalid_scope"}, "error_description": {"scope must include openid"}})
		return
	}
	if r.Method == http.MethodGet {
		p.signInPage(w, http.StatusOK, a, "")
		return
	}
	if q.Get("cancel") != "" {
		back(url.Values{"error": {"access_denied"}})
		return
	}
	name := strings.TrimSpace(q.Get("username"))
	if !userName.MatchString(name) {
		p.signInPage(w, http.StatusBadRequest, a, "A user name is 1 to 64 letters, digits or . _ @ -")
		return
	}
	var groups []string
	if q.Get("admin") != "" {
		if !p.adminAllowed(q.Get("admin_secret")) {
			p.signInPage(w, http.StatusBadRequest, a, "The admin box needs the runner's secret (LOCAL_JWT_SECRET).")
			return
		}
		groups = []string{apigw.AdminGroup}
	}
	code := randomToken()
	p.mu.Lock()
	p.expireLocked()
	p.codes[code] = authCode{
		grant:    grant{client: a.ClientID, sub: localSub(name), username: name, groups: groups, scope: a.Scope, exp: p.now().Add(codeTTL)},
		redirect: a.RedirectURI, challenge: a.Challenge, nonce: a.Nonce,
	}
	p.mu.Unlock()
	back(url.Values{"code": {code}})
}

// adminAllowed reports whether secret is the provider's admin secret (never when it has none).
func (p *oidcProvider) adminAllowed(secret string) bool {
	return len(p.adminSecret) > 0 && subtle.ConstantTimeCompare([]byte(secret), p.adminSecret) == 1
}

func hasScope(scope, want string) bool {
	for _, s := range strings.Fields(scope) {
		if s == want {
			return true
		}
	}
	return false
}

// localSub is a user's sub: stable per user name, as Cognito's is per user. It is the name
// itself, so what the API records (reservations' user_id) reads as the name typed in.
func localSub(name string) string { return name }

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) //nolint:errcheck // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// expireLocked drops expired codes and refresh tokens, and everything when too many are held.
func (p *oidcProvider) expireLocked() {
	now := p.now()
	for k, c := range p.codes {
		if !now.Before(c.exp) {
			delete(p.codes, k)
		}
	}
	for k, g := range p.refreshs {
		if !now.Before(g.exp) {
			delete(p.refreshs, k)
		}
	}
	if len(p.codes) >= maxPending {
		p.codes = map[string]authCode{}
	}
	if len(p.refreshs) >= maxPending {
		p.refreshs = map[string]grant{}
	}
}

var signInTemplate = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — lastunit (local)</title>
<link rel="stylesheet" href="/assets/app.css">
</head>
<body>
<header><h1>Sign in to lastunit</h1></header>
<main class="signin">
  <p>The local runner's sign-in page stands in for Cognito's managed login: any user name signs in, no password.</p>
  {{if .Problem}}<p class="msg bad" role="alert" id="problem">{{.Problem}}</p>{{end}}
  <form method="post" action="/oauth2/authorize" id="oidc-signin" aria-label="Sign in">
    <input type="hidden" name="response_type" value="{{.P.ResponseType}}">
    <input type="hidden" name="client_id" value="{{.P.ClientID}}">
    <input type="hidden" name="redirect_uri" value="{{.P.RedirectURI}}">
    <input type="hidden" name="state" value="{{.P.State}}">
    <input type="hidden" name="code_challenge" value="{{.P.Challenge}}">
    <input type="hidden" name="code_challenge_method" value="{{.P.Method}}">
    <input type="hidden" name="scope" value="{{.P.Scope}}">
    <input type="hidden" name="nonce" value="{{.P.Nonce}}">
    <p class="row"><label for="username">User name</label>
      <input id="username" name="username" autocomplete="username" required pattern="[A-Za-z0-9_.@\-]{1,64}" autofocus></p>
    <p class="row"><input type="checkbox" id="admin" name="admin" value="1">
      <label for="admin">admin (adds the user to the admin group; local only)</label></p>
    <p class="row"><label for="admin-secret">Runner's secret (LOCAL_JWT_SECRET), needed with the admin box</label>
      <input type="password" id="admin-secret" name="admin_secret" autocomplete="off"></p>
    <p class="row"><button type="submit" id="oidc-submit">Sign in</button>
      <button type="submit" class="secondary" name="cancel" value="1" formnovalidate>Cancel</button></p>
  </form>
</main>
</body>
</html>
`))

func (p *oidcProvider) signInPage(w http.ResponseWriter, status int, a authorizeParams, problem string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	signInTemplate.Execute(w, map[string]any{"P": a, "Problem": problem}) //nolint:errcheck
}

// token is /oauth2/token: authorization_code (with the PKCE verifier) and refresh_token.
func (p *oidcProvider) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	f := r.PostForm
	client := f.Get("client_id")
	if _, ok := localClients[client]; !ok {
		oauthError(w, http.StatusBadRequest, "invalid_client", "unknown client_id")
		return
	}
	now := p.now()
	var g grant
	var nonce, refresh string
	switch f.Get("grant_type") {
	case "authorization_code":
		code := f.Get("code")
		p.mu.Lock()
		c, ok := p.codes[code]
		if ok && c.client == client {
			delete(p.codes, code) // single use, whatever follows
		}
		p.mu.Unlock()
		switch {
		case !ok || c.client != client || !now.Before(c.exp):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the code is unknown, used, expired or not this client's")
			return
		case f.Get("redirect_uri") != c.redirect:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request's")
			return
		case !pkceMatches(f.Get("code_verifier"), c.challenge):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
			return
		}
		g, nonce = c.grant, c.nonce
		refresh = randomToken()
		rg := g
		rg.exp = now.Add(refreshTTL)
		p.mu.Lock()
		p.expireLocked()
		p.refreshs[refresh] = rg
		p.mu.Unlock()
	case "refresh_token":
		p.mu.Lock()
		rg, ok := p.refreshs[f.Get("refresh_token")]
		p.mu.Unlock()
		if !ok || rg.client != client || !now.Before(rg.exp) {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is unknown, expired or not this client's")
			return
		}
		g = rg
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
		return
	}
	p.mu.Lock()
	ttl := p.ttl
	p.mu.Unlock()
	access, id, err := p.issue(g, nonce, now, ttl)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "could not sign the tokens")
		return
	}
	out := map[string]any{"access_token": access, "id_token": id, "token_type": "Bearer", "expires_in": int(ttl / time.Second)}
	if refresh != "" {
		out["refresh_token"] = refresh
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, out)
}

// revoke is /oauth2/revoke (RFC 7009, as Cognito's): a client revokes one of its refresh
// tokens, which the provider forgets at once; refreshing with it is invalid_grant from then on.
// An unknown token is 200 as well (it is worth nothing already); another client's is refused
// and stays valid. Access tokens already issued live until they expire.
func (p *oidcProvider) revoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	client, tok := r.PostForm.Get("client_id"), r.PostForm.Get("token")
	if _, ok := localClients[client]; !ok {
		oauthError(w, http.StatusBadRequest, "invalid_client", "unknown client_id")
		return
	}
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	p.mu.Lock()
	g, ok := p.refreshs[tok]
	mine := !ok || g.client == client
	if ok && mine {
		delete(p.refreshs, tok)
	}
	p.mu.Unlock()
	if !mine {
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "the token is not this client's")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// pkceMatches checks RFC 7636's S256: BASE64URL(SHA256(verifier)) == challenge, with a
// verifier of 43 to 128 unreserved characters.
func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 || strings.ContainsFunc(verifier, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r))
	}) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// issue signs an access token and an ID token with Cognito's claims.
func (p *oidcProvider) issue(g grant, nonce string, now time.Time, ttl time.Duration) (access, id string, err error) {
	common := func() jwt.MapClaims {
		c := jwt.MapClaims{"sub": g.sub, "iss": p.issuer, "iat": now.Unix(), "auth_time": now.Unix(),
			"exp": now.Add(ttl).Unix(), "jti": randomToken()[:22]}
		if len(g.groups) > 0 {
			c["cognito:groups"] = g.groups
		}
		return c
	}
	ac := common()
	ac["token_use"], ac["client_id"], ac["scope"], ac["username"] = "access", g.client, g.scope, g.username
	ic := common()
	ic["token_use"], ic["aud"], ic["cognito:username"] = "id", g.client, g.username
	if nonce != "" {
		ic["nonce"] = nonce
	}
	if access, err = p.sign(ac); err != nil {
		return "", "", err
	}
	id, err = p.sign(ic)
	return access, id, err
}

func (p *oidcProvider) sign(c jwt.MapClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = p.kid
	return t.SignedString(p.key)
}

// logout is /logout?client_id=…&logout_uri=…: the runner keeps no sign-in session, so it only
// checks the sign-out URI is the client's and goes there (Cognito also ends its session).
func (p *oidcProvider) logout(w http.ResponseWriter, r *http.Request) {
	client, uri := r.URL.Query().Get("client_id"), r.URL.Query().Get("logout_uri")
	if _, ok := localClients[client]; !ok || !registeredURI(r, client, uri) {
		http.Error(w, "unknown client_id or logout_uri not registered for it", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, uri, http.StatusFound)
}

// verify checks one of the provider's tokens as the stack's JWT authorizer checks Cognito's:
// RS256 with the provider's key, iss, exp, and aud (ID token) or client_id (access token)
// equal to client. It returns the claims as API Gateway passes them to a function.
func (p *oidcProvider) verify(raw, client string) (map[string]string, error) {
	tok, err := jwt.Parse(raw, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != p.kid {
			return nil, fmt.Errorf("unknown key %q", kid)
		}
		return &p.key.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(p.issuer), jwt.WithExpirationRequired(), jwt.WithTimeFunc(p.now))
	if err != nil {
		return nil, err
	}
	mc := tok.Claims.(jwt.MapClaims)
	aud, _ := mc.GetAudience()
	cid, _ := mc["client_id"].(string)
	ok := cid == client
	for _, a := range aud {
		ok = ok || a == client
	}
	if !ok {
		return nil, errors.New("not for this route's client")
	}
	return gatewayClaims(mc)
}

// tokenAlg is the alg of a JWT's header, unverified ("" when it is not a JWT).
func tokenAlg(raw string) string {
	h, _, ok := strings.Cut(raw, ".")
	if !ok {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &hdr) != nil {
		return ""
	}
	return hdr.Alg
}

// checkToken is the runner's authorizer for a protected route: the provider's RS256 tokens
// of the route's client (the dashboard's on admin routes, the storefront's elsewhere, as the
// stack's two authorizers), or an HS256 token signed with LOCAL_JWT_SECRET on any route (for
// curl and test clients: POST /_local/token).
func (s *server) checkToken(header string, access apigw.Access, now time.Time) (map[string]string, error) {
	raw, ok := strings.CutPrefix(header, "Bearer ")
	if ok && s.oidc != nil && tokenAlg(raw) == "RS256" {
		client := StoreClientID
		if access == apigw.Admin {
			client = AdminClientID
		}
		return s.oidc.verify(raw, client)
	}
	return s.tokens.verify(s.secret, header, now)
}

// wsTokens checks the WebSocket's ?token= as wsconnect does in AWS (jwtauth against the
// issuer's JWKS, the storefront's client), with hs256 for the runner's HS256 tokens. The JWKS
// is read from the provider in process, not over the network.
func (s *server) wsTokens(hs256 handler.TokenVerifier) handler.TokenVerifier {
	if s.oidc == nil {
		return hs256
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: handlerTransport(s.oidc.jwks)}
	return eitherVerifier{rs256: jwtauth.Cognito(s.oidc.issuer, StoreClientID, hc), hs256: hs256}
}

type eitherVerifier struct{ rs256, hs256 handler.TokenVerifier }

func (v eitherVerifier) Verify(ctx context.Context, raw string) (apigw.Identity, error) {
	if tokenAlg(raw) == "RS256" {
		return v.rs256.Verify(ctx, raw)
	}
	if v.hs256 == nil {
		return apigw.Identity{}, jwtauth.ErrInvalid
	}
	return v.hs256.Verify(ctx, raw)
}

// handlerTransport answers every request with h, in process.
type handlerTransport http.HandlerFunc

func (h handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body) //nolint:errcheck
		r.Body.Close()
	}
	w := &bufferWriter{header: http.Header{}, code: http.StatusOK}
	h(w, r)
	return &http.Response{StatusCode: w.code, Header: w.header, Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Request: r}, nil
}

// bufferWriter is a ResponseWriter that keeps the answer in memory.
type bufferWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *bufferWriter) Header() http.Header         { return w.header }
func (w *bufferWriter) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *bufferWriter) WriteHeader(code int)        { w.code = code }
