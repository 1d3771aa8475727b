package main

// The real reserve binary, built as `make package` builds it (lambda.norpc, trimpath) but for
// this machine, started under the AWS Lambda runtime interface emulator and invoked with API
// Gateway HTTP API (v2) events against this test's own Postgres and Redis databases.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/testenv"
)

// rieBinary finds the emulator: $LASTUNIT_RIE, else .tools/bin/aws-lambda-rie (`make rie`).
func rieBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("LASTUNIT_RIE")
	if path == "" {
		path, _ = filepath.Abs("../../.tools/bin/aws-lambda-rie")
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the Lambda runtime interface emulator is missing at %s: `make rie` installs it", path)
		}
		t.Skipf("no Lambda runtime interface emulator at %s (`make rie` installs it)", path)
	}
	return path
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestBootstrapUnderRIE is the smoke test of a deployable binary: cold start (config, secrets
// resolution skipped, migrations, Redis) and the HTTP API adapter, through the Lambda Runtime API.
func TestBootstrapUnderRIE(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the function binary")
	}
	rie := rieBinary(t)
	env := testenv.NewEnv(t)
	env.Product(t, "smoke-1", 7, 2)

	dir := t.TempDir()
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", filepath.Join(dir, "bootstrap"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build bootstrap: %v\n%s", err, out)
	}

	addr, runtimeAPI := freePort(t), freePort(t)
	opts := env.Redis.Options()
	var logs bytes.Buffer
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", runtimeAPI,
		filepath.Join(dir, "bootstrap"))
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+env.DBURL,
		fmt.Sprintf("REDIS_URL=redis://%s/%d", opts.Addr, opts.DB),
		"MIGRATE_ON_START=true",
		"SQS_ENDPOINT=http://127.0.0.1:9", // nothing here sends; never reach a real AWS endpoint
		"QUEUE_PREFIX=lastunit-rie-",
		"AWS_REGION=us-east-1",
		"AWS_LAMBDA_FUNCTION_NAME=lastunit-reserve",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=30",
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the emulator and the bootstrap it starts
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() || testing.Verbose() {
			t.Logf("emulator and function output:\n%s", logs.String())
		}
	})
	url := "http://" + addr + "/2015-03-31/functions/function/invocations"
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator does not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	tests := []struct {
		name       string
		routeKey   string
		method     string
		path       string
		params     map[string]string
		wantStatus int
		wantBody   string // a substring of the body
	}{
		{"list products (cold start)", "GET /products", "GET", "/products", nil, 200, `"id":"smoke-1"`},
		{"one product", "GET /products/{id}", "GET", "/products/smoke-1", map[string]string{"id": "smoke-1"}, 200, `"available":7`},
		{"unknown product", "GET /products/{id}", "GET", "/products/nope", map[string]string{"id": "nope"}, 404, `"code":"not_found"`},
		{"reserve without a token", "POST /reservations", "POST", "/reservations", nil, 401, `"code":"unauthenticated"`},
		{"unknown route ($default)", "$default", "GET", "/nowhere", nil, 404, `"code":"not_found"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := events.APIGatewayV2HTTPRequest{
				Version: "2.0", RouteKey: tt.routeKey, RawPath: tt.path, PathParameters: tt.params,
				Headers: map[string]string{"content-type": "application/json"},
				RequestContext: events.APIGatewayV2HTTPRequestContext{
					RouteKey: tt.routeKey, Stage: "$default", RequestID: "rie-" + strings.ReplaceAll(tt.name, " ", "-"),
					HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: tt.method, Path: tt.path, Protocol: "HTTP/1.1"},
				},
			}
			if tt.method == "POST" {
				ev.Body = `{"product_id":"smoke-1","quantity":1}`
			}
			body, _ := json.Marshal(ev)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("invoke: %v", err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var out events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != 200 {
				t.Fatalf("invoke answered %d %s", resp.StatusCode, raw)
			}
			if out.StatusCode != tt.wantStatus || !strings.Contains(out.Body, tt.wantBody) {
				t.Fatalf("got %d %s, want %d with %s", out.StatusCode, out.Body, tt.wantStatus, tt.wantBody)
			}
			if ct := out.Headers["Content-Type"] + out.Headers["content-type"]; !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content type %q", ct)
			}
		})
	}
}
