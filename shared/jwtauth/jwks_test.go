package jwtauth

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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// issuer is a fake Cognito issuer whose JWKS endpoint counts its requests, can hold them
// until released, and serves keys only when told to.
type issuer struct {
	srv     *httptest.Server
	key     *rsa.PrivateKey
	hits    atomic.Int64
	hold    chan struct{} // when non-nil, each request waits for it to close
	mu      sync.Mutex
	serving bool // false: 500
	empty   bool // true: 200 with no keys
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key, serving: true}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.hits.Add(1)
		is.mu.Lock()
		hold, serving, empty := is.hold, is.serving, is.empty
		is.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if !serving {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		keys := []map[string]string{}
		if !empty {
			keys = append(keys, map[string]string{"kid": "k1", "kty": "RSA",
				"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes())})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) set(f func(*issuer)) { is.mu.Lock(); f(is); is.mu.Unlock() }

func (is *issuer) token(t *testing.T, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix(),
		"iss": is.srv.URL, "client_id": "c", "token_use": "access"})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(is.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWKSOneFetchNoLockHeld: 200 tokens arriving while the key set is being fetched share
// one request; while it is out, a caller whose context ends is not kept waiting, and a
// token whose key is already in hand verifies at once (no lock is held across the fetch).
func TestJWKSOneFetchNoLockHeld(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	v := Cognito(is.srv.URL, "c", is.srv.Client())
	tok := is.token(t, "k1")
	// First, the key is in hand.
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	// A token naming an unknown key fetches again (the clock has moved a minute on); that
	// fetch is held.
	v.jwks.mu.Lock()
	v.jwks.next = time.Time{}
	v.jwks.mu.Unlock()
	release := make(chan struct{})
	is.set(func(is *issuer) { is.hold = release })
	before := is.hits.Load()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Verify(context.Background(), is.token(t, "k2"))
			errs <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for is.hits.Load() == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// While the fetch is out: a known key verifies, an impatient caller gives up.
	known, impatient := make(chan error, 1), make(chan error, 1)
	go func() { _, err := v.Verify(context.Background(), tok); known <- err }()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := v.Verify(ctx, is.token(t, "k3"))
		impatient <- err
	}()
	for name, ch := range map[string]chan error{"a token whose key is in hand": known, "a caller whose context ended": impatient} {
		select {
		case err := <-ch:
			if ch == known && err != nil {
				t.Errorf("%s, while the fetch is out: %v", name, err)
			}
			if ch == impatient && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s, while the fetch is out: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			close(release)
			t.Fatalf("%s waited on a fetch it did not need (a lock held across the request)", name)
		}
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("a token with an unknown key: %v", err)
		}
	}
	if n := is.hits.Load() - before; n != 1 {
		t.Fatalf("200 waiting tokens made %d JWKS requests, want 1", n)
	}
}

// TestJWKSBackoff: while the endpoint fails or has no keys, tokens do not make a request
// each: at most one per backoff interval (1 s, 2 s, 4 s, … on an injected clock); once keys
// come back, tokens verify.
func TestJWKSBackoff(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"down", "empty"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			is := newIssuer(t)
			is.set(func(is *issuer) { is.serving, is.empty = mode != "down", mode == "empty" })
			v := Cognito(is.srv.URL, "c", is.srv.Client())
			now := time.Unix(1_800_000_000, 0)
			var mu sync.Mutex
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			v.jwks.now = clock
			tok := is.token(t, "k1")
			burst := func() {
				for range 50 {
					if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalid) {
						t.Fatalf("verified without keys: %v", err)
					}
				}
			}
			want := int64(0)
			for _, wait := range []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second} {
				advance(wait)
				burst()
				want++
				if got := is.hits.Load(); got != want {
					t.Fatalf("after waiting %s: %d JWKS requests, want %d", wait, got, want)
				}
				advance(wait*2 - time.Millisecond) // just short of the next interval
				burst()
				if got := is.hits.Load(); got != want {
					t.Fatalf("within the backoff after %s: %d JWKS requests, want %d", wait, got, want)
				}
				advance(-(wait*2 - time.Millisecond))
			}
			// Capped at a minute.
			advance(time.Hour)
			burst()
			want++
			advance(jwksBackoffMax)
			burst()
			if got := is.hits.Load(); got != want+1 {
				t.Fatalf("after the cap: %d requests, want %d", got, want+1)
			}
			// Keys are back: the next fetch after the backoff brings them.
			is.set(func(is *issuer) { is.serving, is.empty = true, false })
			advance(jwksBackoffMax)
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Fatalf("with keys back: %v", err)
			}
		})
	}
}
