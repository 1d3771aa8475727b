package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fuzzSecret signs the seeds in testdata/fuzz/FuzzVerifyToken (their exp is in 2100).
const fuzzSecret = "fuzz-secret"

// FuzzVerifyToken: any Authorization header verifies without panicking, and verifies only
// when it is "Bearer " and an unexpired HS256 token with a subject whose signature is the
// secret's HMAC of its first two parts. Nothing verifies under another secret.
func FuzzVerifyToken(f *testing.F) {
	secret := []byte(fuzzSecret)
	now := time.Now()
	valid, err := mintToken(secret, "alice", []string{"admin"}, time.Hour, now)
	if err != nil {
		f.Fatal(err)
	}
	expired, _ := mintToken(secret, "alice", nil, time.Second, now.Add(-time.Hour))
	other, _ := mintToken([]byte("another-secret"), "alice", []string{"admin"}, time.Hour, now)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}).
		SignedString(secret)
	for _, s := range []string{
		"Bearer " + valid, valid, "bearer " + valid, "Bearer  " + valid, "Bearer " + valid + " ",
		"Bearer " + expired, "Bearer " + other, "Bearer " + none, "Bearer " + hs512,
		"", "Bearer ", "Bearer .", "Bearer ..", "Bearer a.b.c", "Basic YWRtaW46YWRtaW4=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		claims, err := verifyToken(secret, header)
		if err != nil {
			if claims != nil {
				t.Fatalf("error %v with claims %v", err, claims)
			}
			return
		}
		raw, ok := strings.CutPrefix(header, "Bearer ")
		if !ok {
			t.Fatalf("verified without the Bearer scheme: %q", header)
		}
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("verified a token of %d parts: %q", len(parts), raw)
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(parts[0] + "." + parts[1]))
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
			t.Fatalf("verified a token the secret did not sign: %q", raw)
		}
		hb, err := base64.RawURLEncoding.DecodeString(parts[0])
		var h struct {
			Alg string `json:"alg"`
		}
		if err != nil || json.Unmarshal(hb, &h) != nil || h.Alg != "HS256" {
			t.Fatalf("verified a token whose header is %q", hb)
		}
		if claims["sub"] == "" {
			t.Fatalf("verified a token without sub: %v", claims)
		}
		exp, err := strconv.ParseFloat(claims["exp"], 64)
		if err != nil || time.Unix(int64(exp), 0).Before(time.Now().Add(-time.Minute)) {
			t.Fatalf("verified a token with exp %q", claims["exp"])
		}
		if _, err := verifyToken([]byte("another-secret"), header); err == nil {
			t.Fatalf("verifies under another secret too: %q", header)
		}
	})
}
