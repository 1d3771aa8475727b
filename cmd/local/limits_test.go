package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"lastunit/shared/handler"
	"lastunit/shared/testenv"
	"lastunit/web"
)

// startLimited serves the reserve function, the runner-only token route and the pages with
// short limits, configured as the runner configures its http.Server.
func startLimited(t *testing.T, l limits) *httptest.Server {
	t.Helper()
	env := testenv.NewEnv(t)
	s := newServer(quiet, []byte(testSecret), func(context.Context) error { return nil }, handler.Reserve(env.Shop, quiet))
	s.servePages(web.Config{Local: true})
	s.limits = l
	srv := httptest.NewUnstartedServer(s)
	s.configure(srv.Config)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// closedWithin reports whether the server ends the connection (after answering or not)
// within d; what it answered first is returned.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) (string, bool) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return string(b), false
	}
	return string(b), true // EOF or a reset: the server closed it
}

// TestServerLimitsSlowBody: a client that sends its headers and then a body slower than the
// body timeout is disconnected, on an API route, a runner-only route and a page. The wait
// is bounded loosely (10 s for a 300 ms limit); without the limit it would never end.
func TestServerLimitsSlowBody(t *testing.T) {
	t.Parallel()
	srv := startLimited(t, limits{header: 5 * time.Second, body: 300 * time.Millisecond, idle: time.Minute, maxHeaderBytes: 32 << 10})
	tok := bearer(t, "slow")
	for _, path := range []string{"POST /reservations", "POST /_local/token", "GET /dashboard"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", path, tok)
			start := time.Now()
			got, closed := closedWithin(t, c, 10*time.Second)
			if !closed {
				t.Fatalf("a stalled body kept the connection open for %s (answered %q)", time.Since(start), got)
			}
			t.Logf("disconnected after %s; answered %q", time.Since(start).Round(time.Millisecond), strings.SplitN(got, "\r\n", 2)[0])
		})
	}
}

// TestServerLimitsIdle: a keep-alive connection that sends nothing after its request is
// closed after the idle timeout.
func TestServerLimitsIdle(t *testing.T) {
	t.Parallel()
	srv := startLimited(t, limits{header: 5 * time.Second, body: 5 * time.Second, idle: 300 * time.Millisecond, maxHeaderBytes: 32 << 10})
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if _, closed := closedWithin(t, c, 10*time.Second); !closed {
		t.Fatal("an idle keep-alive connection stayed open")
	}
}

// TestServerLimitsHeaderBytes: headers past the limit get 431 before any route runs, so a
// 400 KB token never reaches the verifier or its cache.
func TestServerLimitsHeaderBytes(t *testing.T) {
	t.Parallel()
	srv := startLimited(t, defaultLimits)
	claims := jwt.MapClaims{"sub": "big", "exp": time.Now().Add(time.Hour).Unix(), "pad": strings.Repeat("x", 400<<10)}
	big := "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims)
	r := call(t, srv, "GET", "/reservations", big, "")
	if r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 400 KB Authorization header: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "GET", "/reservations", bearer(t, "small"), ""); r.status != 200 {
		t.Fatalf("a normal token after it: %d %s", r.status, r.body)
	}
}

// TestTokenCacheBounded: the cache keys tokens by their hash, keeps no token whose claims
// are large, never counts more than maxCachedBytes, and still answers repeat tokens from
// memory (a cached token verifies even under a wrong secret, which is how a hit shows).
func TestTokenCacheBounded(t *testing.T) {
	t.Parallel()
	var c tokenCache
	secret, now := []byte(testSecret), time.Now()
	exp := now.Add(time.Hour).Unix()
	// 150 large tokens, each with 30 KB of claims (what fits under the header limit).
	for i := range 150 {
		h := "Bearer " + sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": fmt.Sprint("big", i), "exp": exp, "pad": strings.Repeat("x", 30<<10)})
		if _, err := c.verify(secret, h, now); err != nil {
			t.Fatal(err)
		}
		if _, err := c.verify([]byte("wrong"), h, now); err == nil {
			t.Fatal("a large token was cached")
		}
	}
	if n, b := c.usage(); n != 0 || b != 0 {
		t.Fatalf("after 150 large tokens the cache holds %d tokens, %d bytes", n, b)
	}
	// Many medium tokens: the count of bytes stays under the cap.
	for i := range 8000 {
		h := "Bearer " + sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": fmt.Sprint("u", i), "exp": exp, "pad": strings.Repeat("y", 3<<10)})
		if _, err := c.verify(secret, h, now); err != nil {
			t.Fatal(err)
		}
		if _, b := c.usage(); b > maxCachedBytes {
			t.Fatalf("the cache counts %d bytes, over its cap %d", b, maxCachedBytes)
		}
	}
	small := bearer(t, "alice")
	if _, err := c.verify(secret, small, now); err != nil {
		t.Fatal(err)
	}
	claims, err := c.verify([]byte("wrong"), small, now)
	if err != nil || claims["sub"] != "alice" {
		t.Fatalf("a small token was not answered from the cache: %v %v", claims, err)
	}
	if _, err := c.verify([]byte("wrong"), small, now.Add(2*time.Hour)); err == nil {
		t.Fatal("an expired cached token still verifies")
	}
}

// TestServerLimitsSpareWebSockets: the body and idle timeouts are per request (net/http lifts
// the deadline when the upgrade takes the connection over), so a WebSocket outlives them
// (here ten times over) and still answers.
func TestServerLimitsSpareWebSockets(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "ws-tee", 5, 5)
	s := newServer(quiet, []byte(testSecret), func(context.Context) error { return nil }, handler.Reserve(env.Shop, quiet))
	s.limits = limits{header: 5 * time.Second, body: 200 * time.Millisecond, idle: 200 * time.Millisecond, maxHeaderBytes: 32 << 10}
	srv := httptest.NewUnstartedServer(s)
	s.configure(srv.Config)
	srv.Start()
	t.Cleanup(srv.Close)
	attachLive(t, env, s, srv.URL)
	v := dial(t, srv, "")
	time.Sleep(2 * time.Second)
	v.subscribe("ws-tee")
}
