package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestWarnExposure: a runner that listens beyond loopback says so at start (and louder with
// the public default secret); one on loopback says nothing.
func TestWarnExposure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr, secret string
		warnings     int
	}{
		{"127.0.0.1:8080", DefaultJWTSecret, 0},
		{"127.0.0.2:8080", DefaultJWTSecret, 0},
		{"localhost:8080", DefaultJWTSecret, 0},
		{"[::1]:8080", DefaultJWTSecret, 0},
		{"0.0.0.0:8080", "a-secret-of-my-own", 1},
		{":8080", "a-secret-of-my-own", 1},
		{"[::]:8080", "a-secret-of-my-own", 1},
		{"192.168.1.20:8080", "a-secret-of-my-own", 1},
		{"shop.test:8080", "a-secret-of-my-own", 1},
		{"0.0.0.0:8080", DefaultJWTSecret, 2},
		{"not an address", "a-secret-of-my-own", 1},
	} {
		var buf bytes.Buffer
		warnExposure(slog.New(slog.NewJSONHandler(&buf, nil)), tc.addr, tc.secret)
		lines := strings.Count(buf.String(), `"level":"WARN"`)
		if lines != tc.warnings {
			t.Errorf("%s (secret %q): %d warnings, want %d:\n%s", tc.addr, tc.secret, lines, tc.warnings, buf.String())
		}
		if tc.warnings > 0 && !strings.Contains(buf.String(), tc.addr) {
			t.Errorf("%s: the warning does not name the address: %s", tc.addr, buf.String())
		}
	}
}
