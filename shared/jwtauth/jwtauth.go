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
	"golang.org/x/sync/singleflight"

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
// exp is required, sub must be set, and token_use, when present, must be "access".
func HS256(secret []byte) *Verifier { return &Verifier{secret: secret, now: time.Now} }

// Cognito returns a verifier of a Cognito user pool's access tokens: RS256, signed by a key
// of issuer/.well-known/jwks.json, iss == issuer, exp required, token_use "access", and, when
// clientID is set, client_id equal to it. ID tokens (token_use "id") are refused: they are
// the client's proof of who signed in, not a credential for an API, and the WebSocket's
// ?token= lands in URLs and logs, where the ID token's personal claims (email, name) should
// not. The storefront sends the access token to the HTTP API and the WebSocket alike.
func Cognito(issuer, clientID string, hc *http.Client) *Verifier {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	return &Verifier{issuer: issuer, audience: clientID, jwks: &jwks{url: issuer + "/.well-known/jwks.json", client: hc, now: time.Now}, now: time.Now}
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
	// Access tokens only (see Cognito): a local token may leave token_use out.
	if use, _ := mc["token_use"].(string); use != "access" && (v.jwks != nil || use != "") {
		return apigw.Identity{}, fmt.Errorf("%w: not an access token (token_use %q)", ErrInvalid, use)
	}
	if v.audience != "" {
		if cid, _ := mc["client_id"].(string); cid != v.audience {
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

// jwks is an issuer's signing keys. They are fetched when a token names a key not in hand:
// by one request at a time however many tokens wait (the others wait for it, each until its
// own context ends, with no lock held while the request is out), at most once a minute while
// the set has keys, and with a backoff (1 s doubling to 1 min) while fetches fail or bring
// no usable key, so an outage or an empty set is not hammered.
type jwks struct {
	url    string
	client *http.Client
	now    func() time.Time
	group  singleflight.Group

	mu    sync.Mutex
	keys  map[string]*rsa.PublicKey
	next  time.Time // no fetch before this
	fails int       // fetches in a row that failed or brought no key
}

// Intervals between JWKS fetches.
const (
	jwksRefresh    = time.Minute // with keys in hand, for a key not among them
	jwksBackoff    = time.Second // after the first failed or empty fetch, doubling
	jwksBackoffMax = time.Minute
)

func (j *jwks) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	if k := j.lookup(kid); k != nil {
		return k, nil
	}
	// One fetch for every waiter; it runs on its own context (the waiters' may end first)
	// and the client's timeout.
	ch := j.group.DoChan("jwks", func() (any, error) { return nil, j.refresh(context.WithoutCancel(ctx)) })
	select {
	case r := <-ch:
		if k := j.lookup(kid); k != nil {
			return k, nil
		}
		if r.Err != nil {
			return nil, r.Err
		}
		return nil, fmt.Errorf("unknown key %q", kid)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (j *jwks) lookup(kid string) *rsa.PublicKey {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.keys[kid]
}

// refresh fetches the set unless the last fetch was too recent; the lock is not held while
// the request is out.
func (j *jwks) refresh(ctx context.Context) error {
	j.mu.Lock()
	if wait := j.next.Sub(j.now()); wait > 0 {
		j.mu.Unlock()
		return fmt.Errorf("no JWKS fetch for another %s", wait.Round(time.Millisecond))
	}
	j.mu.Unlock()
	keys, err := j.fetch(ctx)
	if err == nil && len(keys) == 0 {
		err = errors.New("the JWKS has no usable key")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		j.fails++
		j.next = j.now().Add(min(jwksBackoff<<min(j.fails-1, 10), jwksBackoffMax))
		return err
	}
	j.keys, j.fails, j.next = keys, 0, j.now().Add(jwksRefresh)
	return nil
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
