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
		t.Fatalf("the Lambda runtime interface emulator is missing at %s: `make rie` installs it", path)
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

// emulator runs the bootstrap under its own runtime interface emulator with the given
// environment and returns a function that invokes it with one API Gateway event.
func emulator(t *testing.T, rie, bootstrap string, env ...string) func(ev events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	t.Helper()
	addr, runtimeAPI := freePort(t), freePort(t)
	var logs bytes.Buffer
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", runtimeAPI, bootstrap)
	cmd.Env = append(os.Environ(),
		"SQS_ENDPOINT=http://127.0.0.1:9", // nothing here sends; never reach a real AWS endpoint
		"QUEUE_PREFIX=lastunit-rie-",
		"AWS_REGION=us-east-1",
		"AWS_LAMBDA_FUNCTION_NAME=lastunit-reserve",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=30",
	)
	cmd.Env = append(cmd.Env, env...)
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
	return func(ev events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
		t.Helper()
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
		// The emulator answers 502 when the function's process exited (an init crash, which
		// API Gateway would turn into a bare 500 outside the contract).
		if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("invoke answered %d %s", resp.StatusCode, raw)
		}
		return out
	}
}

// rieCase is one API Gateway event and the answer it must get.
type rieCase struct {
	name       string
	routeKey   string
	method     string
	path       string
	params     map[string]string
	user       string // the authorizer's sub claim; "" for none
	wantStatus int
	wantBody   string // a substring of the body
}

func (c rieCase) event() events.APIGatewayV2HTTPRequest {
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: c.routeKey, RawPath: c.path, PathParameters: c.params,
		Headers: map[string]string{"content-type": "application/json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: c.routeKey, Stage: "$default", RequestID: "rie-" + strings.ReplaceAll(c.name, " ", "-"),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: c.method, Path: c.path, Protocol: "HTTP/1.1"},
		},
	}
	if c.method == "POST" {
		ev.Body = `{"product_id":"smoke-1","quantity":1}`
	}
	if c.user != "" {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": c.user}},
		}
	}
	return ev
}

// TestBootstrapUnderRIE is the smoke test of a deployable binary: its cold start (config,
// secrets resolution skipped, no Postgres or Redis call) and the HTTP API adapter, through the
// Lambda Runtime API. With Postgres or Redis down the cold start still succeeds and the
// requests that need the missing dependency answer 503 in the contract's shape; product reads
// need only Redis.
func TestBootstrapUnderRIE(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the function binary")
	}
	rie := rieBinary(t)
	env := testenv.NewEnv(t)
	env.Product(t, "smoke-1", 7, 2)

	dir := t.TempDir()
	bootstrap := filepath.Join(dir, "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", bootstrap, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build bootstrap: %v\n%s", err, out)
	}
	opts := env.Redis.Options()
	redisURL := fmt.Sprintf("redis://%s/%d", opts.Addr, opts.DB)
	const deadPostgres = "postgres://postgres@127.0.0.1:1/lastunit?sslmode=disable&connect_timeout=2"
	const deadRedis = "redis://127.0.0.1:1/0?dial_timeout=1s"

	for _, setup := range []struct {
		name  string
		env   []string
		cases []rieCase
	}{
		{"healthy", []string{"DATABASE_URL=" + env.DBURL, "REDIS_URL=" + redisURL, "DB_MAX_CONNS=1"}, []rieCase{
			{"list products (cold start)", "GET /products", "GET", "/products", nil, "", 200, `"id":"smoke-1"`},
			{"one product", "GET /products/{id}", "GET", "/products/smoke-1", map[string]string{"id": "smoke-1"}, "", 200, `"available":7`},
			{"unknown product", "GET /products/{id}", "GET", "/products/nope", map[string]string{"id": "nope"}, "", 404, `"code":"not_found"`},
			{"reserve without a token", "POST /reservations", "POST", "/reservations", nil, "", 401, `"code":"unauthenticated"`},
			{"reserve", "POST /reservations", "POST", "/reservations", nil, "ana", 201, `"status":"reserved"`},
			{"unknown route ($default)", "$default", "GET", "/nowhere", nil, "", 404, `"code":"not_found"`},
		}},
		{"postgres down", []string{"DATABASE_URL=" + deadPostgres, "REDIS_URL=" + redisURL, "DB_MAX_CONNS=1"}, []rieCase{
			{"one product from Redis (cold start)", "GET /products/{id}", "GET", "/products/smoke-1", map[string]string{"id": "smoke-1"}, "", 200, `"available":6`},
			{"a hold to record", "POST /reservations", "POST", "/reservations", nil, "ben", 503, `"code":"unavailable"`},
		}},
		{"redis down", []string{"DATABASE_URL=" + env.DBURL, "REDIS_URL=" + deadRedis, "DB_MAX_CONNS=1"}, []rieCase{
			{"list products (cold start)", "GET /products", "GET", "/products", nil, "", 503, `"code":"unavailable"`},
			{"reserve", "POST /reservations", "POST", "/reservations", nil, "cai", 503, `"code":"unavailable"`},
		}},
	} {
		t.Run(setup.name, func(t *testing.T) {
			invoke := emulator(t, rie, bootstrap, setup.env...)
			for _, tt := range setup.cases {
				t.Run(tt.name, func(t *testing.T) {
					out := invoke(tt.event())
					if out.StatusCode != tt.wantStatus || !strings.Contains(out.Body, tt.wantBody) {
						t.Fatalf("got %d %s, want %d with %s", out.StatusCode, out.Body, tt.wantStatus, tt.wantBody)
					}
					if ct := out.Headers["Content-Type"] + out.Headers["content-type"]; !strings.HasPrefix(ct, "application/json") {
						t.Errorf("content type %q", ct)
					}
				})
			}
		})
	}
}
