package jwtauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"lastunit/shared/jwtauth"
)

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHS256: the runner's tokens verify with its secret, and nothing else does.
func TestHS256(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cret")
	v := jwtauth.HS256(secret)
	exp := time.Now().Add(time.Hour).Unix()
	good := sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "alice", "exp": exp, "cognito:groups": []string{"admin"}})
	id, err := v.Verify(context.Background(), good)
	if err != nil || id.UserID != "alice" || !id.IsAdmin() {
		t.Fatalf("good token: %+v %v", id, err)
	}
	access := sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "alice", "exp": exp, "token_use": "access"})
	if _, err := v.Verify(context.Background(), access); err != nil {
		t.Fatalf("a local token with token_use access: %v", err)
	}
	// A string groups claim is one group, never split (API Gateway's "[a b]" form is for
	// claims it has stringified; a raw token's claim is what it says).
	for claim, admin := range map[string]bool{"admin": true, "not admin": false, "billing,admin": false, "[admin]": false} {
		tok := sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "alice", "exp": exp, "cognito:groups": claim})
		if id, err := v.Verify(context.Background(), tok); err != nil || id.IsAdmin() != admin {
			t.Errorf("groups claim %q: %+v %v, want admin %v", claim, id, err, admin)
		}
	}
	for name, tok := range map[string]string{
		"other secret": sign(t, jwt.SigningMethodHS256, []byte("other"), "", jwt.MapClaims{"sub": "alice", "exp": exp}),
		"expired":      sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}),
		"no exp":       sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "alice"}),
		"no sub":       sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"exp": exp}),
		"alg none":     sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", jwt.MapClaims{"sub": "alice", "exp": exp}),
		"id token":     sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "alice", "exp": exp, "token_use": "id"}),
		"garbage":      "a.b.c",
	} {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, jwtauth.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	var none *jwtauth.Verifier
	if _, err := none.Verify(context.Background(), good); !errors.Is(err, jwtauth.ErrInvalid) {
		t.Errorf("a nil verifier accepted a token: %v", err)
	}
}

// TestCognito: RS256 tokens of the pool's JWKS, for this client, from this issuer.
func TestCognito(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mux.HandleFunc("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kid": "k1", "kty": "RSA", "alg": "RS256", "use": "sig",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	v := jwtauth.Cognito(srv.URL, "client-1", srv.Client())
	exp := time.Now().Add(time.Hour).Unix()
	claims := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "bob", "exp": exp, "iss": srv.URL, "client_id": "client-1", "token_use": "access", "cognito:groups": []string{"shoppers"}}
		for k, x := range extra {
			if x == nil {
				delete(c, k)
			} else {
				c[k] = x
			}
		}
		return c
	}
	id, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, key, "k1", claims(nil)))
	if err != nil || id.UserID != "bob" || !slices.Equal(id.Groups, []string{"shoppers"}) {
		t.Fatalf("access token: %+v %v", id, err)
	}
	idToken := claims(jwt.MapClaims{"client_id": nil, "aud": "client-1", "token_use": "id", "email": "bob@example.com"})
	for name, tok := range map[string]string{
		"ID token":                sign(t, jwt.SigningMethodRS256, key, "k1", idToken),
		"ID token with client_id": sign(t, jwt.SigningMethodRS256, key, "k1", claims(jwt.MapClaims{"token_use": "id"})),
		"no token_use":            sign(t, jwt.SigningMethodRS256, key, "k1", claims(jwt.MapClaims{"token_use": nil})),
		"token_use Access":        sign(t, jwt.SigningMethodRS256, key, "k1", claims(jwt.MapClaims{"token_use": "Access"})),
		"token_use not a string":  sign(t, jwt.SigningMethodRS256, key, "k1", claims(jwt.MapClaims{"token_use": []string{"access"}})),
		"aud instead of client":   sign(t, jwt.SigningMethodRS256, key, "k1", claims(jwt.MapClaims{"client_id": nil, "aud": "client-1"})),
		"other client":            sign(t, jwt.SigningMethodRS256, key, "k1", claims(jwt.MapClaims{"client_id": "client-2"})),
		"other key":               sign(t, jwt.SigningMethodRS256, other, "k1", claims(nil)),
		"unknown kid":             sign(t, jwt.SigningMethodRS256, key, "k2", claims(nil)),
		"other issuer":            sign(t, jwt.SigningMethodRS256, key, "k1", claims(jwt.MapClaims{"iss": "https://evil"})),
		"expired":                 sign(t, jwt.SigningMethodRS256, key, "k1", claims(jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})),
		"HS256 with n":            sign(t, jwt.SigningMethodHS256, key.N.Bytes(), "k1", claims(nil)),
		"no subject":              sign(t, jwt.SigningMethodRS256, key, "k1", claims(jwt.MapClaims{"sub": nil})),
		"not a token":             "x",
		"empty":                   "",
		"two dots only ":          "..",
	} {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, jwtauth.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
