// Package jwtauth checks bearer tokens where no API Gateway authorizer does it for us: the
// WebSocket $connect's optional ?token= (API Gateway's WebSocket APIs have no JWT authorizer,
// and a Lambda authorizer would refuse the anonymous viewers the contract allows). Locally
// tokens are HS256 with the runner's secret; in AWS they are the Cognito user pool's RS256
// tokens, checked against its JWKS.
package jwtauth

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"lastunit/shared/apigw"
)

// ErrInvalid is returned for any token that does not verify.
var ErrInvalid = errors.New("invalid token")

// Verifier checks tokens and returns who they name.
type Verifier struct {
	secret   []byte // HS256
	issuer   string // RS256 via the issuer's JWKS
	audience string
	jwks     *jwks
	now      func() time.Time
}

// HS256 returns a verifier of HS256 tokens signed with secret (the local runner's tokens):
// exp is required, sub must be set.
func HS256(secret []byte) *Verifier { return &Verifier{secret: secret, now: time.Now} }

// Cognito returns a verifier of a Cognito user pool's tokens: RS256, signed by a key of
// issuer/.well-known/jwks.json, iss == issuer, exp required, and, when clientID is set, the
// ID token's aud or the access token's client_id equal to it.
func Cognito(issuer, clientID string, hc *http.Client) *Verifier {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	return &Verifier{issuer: issuer, audience: clientID, jwks: &jwks{url: issuer + "/.well-known/jwks.json", client: hc}, now: time.Now}
}

// Verify checks raw and returns the identity it names; ErrInvalid (wrapped) when it does not
// verify. A nil Verifier refuses every token.
func (v *Verifier) Verify(ctx context.Context, raw string) (apigw.Identity, error) {
	if v == nil {
		return apigw.Identity{}, fmt.Errorf("%w: no token checker is configured", ErrInvalid)
	}
	opts := []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithTimeFunc(v.now)}
	var key jwt.Keyfunc
	if v.jwks != nil {
		opts = append(opts, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(v.issuer))
		key = func(t *jwt.Token) (any, error) {
			kid, _ := t.Header["kid"].(string)
			return v.jwks.key(ctx, kid)
		}
	} else {
		opts = append(opts, jwt.WithValidMethods([]string{"HS256"}))
		key = func(*jwt.Token) (any, error) { return v.secret, nil }
	}
	tok, err := jwt.Parse(raw, key, opts...)
	if err != nil {
		return apigw.Identity{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	mc, _ := tok.Claims.(jwt.MapClaims)
	sub, _ := mc["sub"].(string)
	if sub == "" {
		return apigw.Identity{}, fmt.Errorf("%w: no sub", ErrInvalid)
	}
	if v.audience != "" {
		aud, _ := mc.GetAudience()
		cid, _ := mc["client_id"].(string)
		ok := cid == v.audience
		for _, a := range aud {
			ok = ok || a == v.audience
		}
		if !ok {
			return apigw.Identity{}, fmt.Errorf("%w: not for this client", ErrInvalid)
		}
	}
	var groups []string
	switch g := mc["cognito:groups"].(type) {
	case []any:
		for _, x := range g {
			if s, ok := x.(string); ok {
				groups = append(groups, s)
			}
		}
	case string: // not how Cognito issues it: the whole string is one group, never split
		groups = []string{g}
	}
	return apigw.Identity{UserID: sub, Groups: groups}, nil
}

// jwks is an issuer's signing keys, fetched once and again (at most once a minute) when a
// token names a key it does not have.
type jwks struct {
	url    string
	client *http.Client
	mu     sync.Mutex
	keys   map[string]*rsa.PublicKey
	last   time.Time
}

func (j *jwks) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if k, ok := j.keys[kid]; ok {
		return k, nil
	}
	if time.Since(j.last) < time.Minute && j.keys != nil {
		return nil, fmt.Errorf("unknown key %q", kid)
	}
	j.last = time.Now()
	keys, err := j.fetch(ctx)
	if err != nil {
		return nil, err
	}
	j.keys = keys
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown key %q", kid)
}

func (j *jwks) fetch(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	var set struct {
		Keys []struct {
			Kid, Kty, N, E string
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) > 8 {
			continue
		}
		out[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return out, nil
}
