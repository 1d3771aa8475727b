package stack

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeRedisAUTH serves Redis's AUTH over TLS on 127.0.0.1 with a certificate for localhost:
// a token is accepted when it is a line of the tokens file (which the harness's ElastiCache
// stand-in rewrites on each change). It returns the port and the CA file node must trust.
func fakeRedisAUTH(t *testing.T, tokensFile string) (port, caFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				token, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "AUTH ")
				raw, _ := os.ReadFile(tokensFile)
				for _, accepted := range strings.Split(string(raw), "\n") {
					if ok && token != "" && token == accepted {
						c.Write([]byte("+OK\r\n"))
						return
					}
				}
				c.Write([]byte("-WRONGPASS invalid username-password pair or user is disabled.\r\n"))
			}()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, caFile
}

type rotationVersion struct {
	Stages []string `json:"stages"`
	Value  *string  `json:"value,omitempty"`
}

type rotationStep struct {
	Step  string `json:"step"`
	Token string `json:"token"`
}

func str(s string) *string { return &s }

// TestRedisRotation runs the Redis rotation function (RedisRotationCode) under Node, against
// stand-ins for Secrets Manager and ElastiCache and a TLS endpoint that checks AUTH as Redis
// does: ElastiCache's two-token rotation keeps the current token working while the new one is
// tested and made current, a later rotation drops the token before, createSecret makes one
// token however often it is called, and a token Redis refuses fails testSecret before anything
// is made current.
func TestRedisRotation(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is needed to run the Redis rotation function: make test-infra puts the pinned Node on PATH")
	}
	dir := t.TempDir()
	harness, err := os.ReadFile("testdata/rotation-harness.js")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"index.js": RedisRotationCode, "harness.js": string(harness)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	all := func(token string) []rotationStep {
		var out []rotationStep
		for _, s := range []string{"createSecret", "createSecret", "setSecret", "testSecret", "finishSecret"} {
			out = append(out, rotationStep{s, token})
		}
		return out
	}
	tests := []struct {
		name         string
		versions     map[string]rotationVersion
		accepted     []string
		ignoreModify bool // the group keeps its tokens whatever it is told
		steps        []rotationStep
		wantErrs     []string // per step; "" for none
		wantCalls    []string
		wantAccepted []string
		wantCurrent  string // the value of AWSCURRENT at the end
	}{
		{
			name:     "first rotation: the new token beside the old, then current",
			versions: map[string]rotationVersion{"v0": {[]string{"AWSCURRENT"}, str("token-0")}, "v1": {Stages: []string{"AWSPENDING"}}},
			accepted: []string{"token-0"}, steps: all("v1"), wantErrs: []string{"", "", "", "", ""},
			wantCalls: []string{
				"sm.getRandomPassword 48 true", "sm.putSecretValue v1 AWSPENDING",
				"ec.modifyReplicationGroup lastunit-redis ROTATE new-token-1 true",
				"sm.updateSecretVersionStage AWSCURRENT v1 v0",
			},
			wantAccepted: []string{"token-0", "new-token-1"}, wantCurrent: "new-token-1",
		},
		{
			name: "a later rotation first drops the token before the current one",
			versions: map[string]rotationVersion{
				"v0": {[]string{"AWSPREVIOUS"}, str("token-0")}, "v1": {[]string{"AWSCURRENT"}, str("token-1")}, "v2": {Stages: []string{"AWSPENDING"}},
			},
			accepted: []string{"token-0", "token-1"}, steps: all("v2"), wantErrs: []string{"", "", "", "", ""},
			wantCalls: []string{
				"sm.getRandomPassword 48 true", "sm.putSecretValue v2 AWSPENDING",
				"ec.modifyReplicationGroup lastunit-redis SET token-1 true",
				"ec.modifyReplicationGroup lastunit-redis ROTATE new-token-1 true",
				"sm.updateSecretVersionStage AWSCURRENT v2 v1",
			},
			wantAccepted: []string{"token-1", "new-token-1"}, wantCurrent: "new-token-1",
		},
		{
			name:     "Redis refuses the new token: testSecret fails, the current token stays",
			versions: map[string]rotationVersion{"v0": {[]string{"AWSCURRENT"}, str("token-0")}, "v1": {Stages: []string{"AWSPENDING"}}},
			accepted: []string{"token-0"}, ignoreModify: true,
			steps:    []rotationStep{{"createSecret", "v1"}, {"setSecret", "v1"}, {"testSecret", "v1"}},
			wantErrs: []string{"", "", "Redis refused a token"},
			wantCalls: []string{
				"sm.getRandomPassword 48 true", "sm.putSecretValue v1 AWSPENDING",
				"ec.modifyReplicationGroup lastunit-redis ROTATE new-token-1 true",
			},
			wantAccepted: []string{"token-0"}, wantCurrent: "token-0",
		},
		{
			name:         "a step for the version already current does nothing",
			versions:     map[string]rotationVersion{"v1": {[]string{"AWSCURRENT"}, str("token-1")}},
			accepted:     []string{"token-1"},
			steps:        []rotationStep{{"setSecret", "v1"}, {"finishSecret", "v1"}},
			wantErrs:     []string{"", ""},
			wantAccepted: []string{"token-1"}, wantCurrent: "token-1",
		},
		{
			name:         "unknown or not pending versions and unknown steps are refused",
			versions:     map[string]rotationVersion{"v0": {[]string{"AWSCURRENT"}, str("token-0")}, "v1": {[]string{}, str("stale")}, "v2": {Stages: []string{"AWSPENDING"}}},
			accepted:     []string{"token-0"},
			steps:        []rotationStep{{"createSecret", "v9"}, {"setSecret", "v1"}, {"rollback", "v2"}},
			wantErrs:     []string{"no version v9", "version v1 is not pending", "unknown step rollback"},
			wantAccepted: []string{"token-0"}, wantCurrent: "token-0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokens := filepath.Join(t.TempDir(), "tokens")
			port, ca := fakeRedisAUTH(t, tokens)
			scenario, _ := json.Marshal(map[string]any{"versions": tt.versions, "accepted": tt.accepted, "steps": tt.steps, "ignoreModify": tt.ignoreModify})
			cmd := exec.Command(node, filepath.Join(dir, "harness.js"), string(scenario))
			cmd.Env = append(os.Environ(), "REDIS_HOST=localhost", "REDIS_PORT="+port, "NODE_EXTRA_CA_CERTS="+ca,
				"REPLICATION_GROUP_ID=lastunit-redis", "POLL_MS=1", "TOKENS_FILE="+tokens)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("node: %v\n%s", err, out)
			}
			var got struct {
				Results  []*string                  `json:"results"`
				Calls    []string                   `json:"calls"`
				Versions map[string]rotationVersion `json:"versions"`
				Accepted []string                   `json:"accepted"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("harness output %q: %v", out, err)
			}
			for i, want := range tt.wantErrs {
				var e string
				if got.Results[i] != nil {
					e = *got.Results[i]
				}
				if want == "" && e != "" || want != "" && !strings.Contains(e, want) {
					t.Errorf("step %d (%s %s): error %q, want %q", i, tt.steps[i].Step, tt.steps[i].Token, e, want)
				}
			}
			if !reflect.DeepEqual(got.Calls, tt.wantCalls) && (len(got.Calls) > 0 || len(tt.wantCalls) > 0) {
				t.Errorf("calls\n got  %q\n want %q", got.Calls, tt.wantCalls)
			}
			if !reflect.DeepEqual(got.Accepted, tt.wantAccepted) {
				t.Errorf("Redis accepts %q, want %q", got.Accepted, tt.wantAccepted)
			}
			current := ""
			for _, v := range got.Versions {
				for _, s := range v.Stages {
					if s == "AWSCURRENT" && v.Value != nil {
						current = *v.Value
					}
				}
			}
			if current != tt.wantCurrent {
				t.Errorf("AWSCURRENT is %q, want %q", current, tt.wantCurrent)
			}
		})
	}
}
