package config

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"lastunit/shared/payment"
)

func TestResolveWith(t *testing.T) {
	const (
		dbARN     = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lastunit/postgres-AbCdEf"
		redisARN  = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lastunit/redis-auth-AbCdEf"
		stripeARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lastunit/stripe-AbCdEf"
		hookARN   = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lastunit/stripe-webhook-AbCdEf"
	)
	base := Config{DatabaseURL: DefaultDatabaseURL, RedisURL: "rediss://master.lastunit.cache.amazonaws.com:6379/0"}
	tests := []struct {
		name    string
		env     map[string]string
		secrets map[string]string
		want    func(Config) Config
		wantErr string // substring; "" means no error
	}{
		{
			name: "nothing named: unchanged, nothing read",
			want: func(c Config) Config { return c },
		},
		{
			name:    "RDS credentials become a URL, password escaped",
			env:     map[string]string{EnvDatabaseSecretARN: dbARN},
			secrets: map[string]string{dbARN: `{"username":"lastunit","password":"p@ss/w:rd?#","host":"db.example.internal","port":5432,"dbname":"lastunit","engine":"postgres"}`},
			want: func(c Config) Config {
				c.DatabaseURL = "postgres://lastunit:p%40ss%2Fw%3Ard%3F%23@db.example.internal:5432/lastunit?sslmode=require"
				return c
			},
		},
		{
			name:    "string port and no dbname",
			env:     map[string]string{EnvDatabaseSecretARN: dbARN},
			secrets: map[string]string{dbARN: `{"username":"u","password":"p","host":"h","port":"6432"}`},
			want: func(c Config) Config {
				c.DatabaseURL = "postgres://u:p@h:6432/lastunit?sslmode=require"
				return c
			},
		},
		{
			name:    "DATABASE_HOST (the RDS Proxy) replaces the instance the secret names",
			env:     map[string]string{EnvDatabaseSecretARN: dbARN, EnvDatabaseHost: "lastunit.proxy-abc.eu-west-1.rds.amazonaws.com"},
			secrets: map[string]string{dbARN: `{"username":"lastunit","password":"pw","host":"db.example.internal","port":5432,"dbname":"lastunit"}`},
			want: func(c Config) Config {
				c.DatabaseURL = "postgres://lastunit:pw@lastunit.proxy-abc.eu-west-1.rds.amazonaws.com:5432/lastunit?sslmode=require"
				return c
			},
		},
		{
			name:    "the application role's secret has no host: DATABASE_HOST gives it",
			env:     map[string]string{EnvDatabaseSecretARN: dbARN, EnvDatabaseHost: "proxy.internal"},
			secrets: map[string]string{dbARN: `{"username":"lastunit_app","password":"pw"}`},
			want: func(c Config) Config {
				c.DatabaseURL = "postgres://lastunit_app:pw@proxy.internal:5432/lastunit?sslmode=require"
				return c
			},
		},
		{
			name:    "DATABASE_SSLMODE verify-full (the proxy's certificate against the system's roots)",
			env:     map[string]string{EnvDatabaseSecretARN: dbARN, EnvDatabaseHost: "proxy.internal", EnvDatabaseSSLMode: "verify-full"},
			secrets: map[string]string{dbARN: `{"username":"lastunit_app","password":"pw"}`},
			want: func(c Config) Config {
				c.DatabaseURL = "postgres://lastunit_app:pw@proxy.internal:5432/lastunit?sslmode=verify-full"
				return c
			},
		},
		{
			name:    "DATABASE_SSLMODE that would turn TLS off",
			env:     map[string]string{EnvDatabaseSecretARN: dbARN, EnvDatabaseSSLMode: "disable"},
			secrets: map[string]string{dbARN: `{"username":"u","password":"p","host":"h"}`},
			wantErr: "DATABASE_SSLMODE must be",
		},
		{
			name:    "RDS secret without a host",
			env:     map[string]string{EnvDatabaseSecretARN: dbARN},
			secrets: map[string]string{dbARN: `{"username":"u","password":"p"}`},
			wantErr: "DATABASE_SECRET_ARN: the secret lacks",
		},
		{
			name:    "RDS secret that is not JSON",
			env:     map[string]string{EnvDatabaseSecretARN: dbARN},
			secrets: map[string]string{dbARN: `hunter2`},
			wantErr: "not RDS credentials JSON",
		},
		{
			name:    "Redis AUTH token becomes the URL's password",
			env:     map[string]string{EnvRedisAuthSecretARN: redisARN},
			secrets: map[string]string{redisARN: "s3cretToken42"},
			want: func(c Config) Config {
				c.RedisURL = "rediss://:s3cretToken42@master.lastunit.cache.amazonaws.com:6379/0"
				return c
			},
		},
		{
			name:    "empty Redis token",
			env:     map[string]string{EnvRedisAuthSecretARN: redisARN},
			secrets: map[string]string{redisARN: ""},
			wantErr: "the secret is empty",
		},
		{
			name:    "Stripe keys",
			env:     map[string]string{EnvStripeSecretARN: stripeARN},
			secrets: map[string]string{stripeARN: `{"secret_key":"sk_test_x","webhook_secret":"whsec_y"}`},
			want: func(c Config) Config {
				c.StripeSecretKey, c.StripeWebhookSecret = "sk_test_x", "whsec_y"
				return c
			},
		},
		{
			name:    "the stack's empty Stripe placeholder leaves the keys unset",
			env:     map[string]string{EnvStripeSecretARN: stripeARN},
			secrets: map[string]string{stripeARN: `{"secret_key":"","webhook_secret":""}`},
			want:    func(c Config) Config { return c },
		},
		{
			name:    "the split: the API key's secret alone leaves the signing secret unset",
			env:     map[string]string{EnvStripeSecretARN: stripeARN},
			secrets: map[string]string{stripeARN: `{"secret_key":"sk_test_x"}`},
			want: func(c Config) Config {
				c.StripeSecretKey = "sk_test_x"
				return c
			},
		},
		{
			name:    "the split: the webhook function reads both secrets",
			env:     map[string]string{EnvStripeSecretARN: stripeARN, EnvStripeWebhookSecretARN: hookARN},
			secrets: map[string]string{stripeARN: `{"secret_key":"sk_test_x"}`, hookARN: `{"webhook_secret":"whsec_y"}`},
			want: func(c Config) Config {
				c.StripeSecretKey, c.StripeWebhookSecret = "sk_test_x", "whsec_y"
				return c
			},
		},
		{
			name:    "the stack's empty signing-secret placeholder leaves it unset",
			env:     map[string]string{EnvStripeWebhookSecretARN: hookARN},
			secrets: map[string]string{hookARN: `{"webhook_secret":""}`},
			want:    func(c Config) Config { return c },
		},
		{
			name:    "a signing secret that is not JSON",
			env:     map[string]string{EnvStripeWebhookSecretARN: hookARN},
			secrets: map[string]string{hookARN: `whsec_plain`},
			wantErr: `STRIPE_WEBHOOK_SECRET_ARN: the secret is not JSON {"webhook_secret"}`,
		},
		{
			name:    "a secret that cannot be read names its variable, not its value",
			env:     map[string]string{EnvStripeSecretARN: stripeARN},
			wantErr: "STRIPE_SECRET_ARN: no such secret",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := 0
			get := func(_ context.Context, arn string) (string, error) {
				read++
				s, ok := tt.secrets[arn]
				if !ok {
					return "", errors.New("no such secret")
				}
				return s, nil
			}
			got, err := ResolveWith(context.Background(), base, get, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				for _, s := range tt.secrets {
					if s != "" && strings.Contains(err.Error(), s) {
						t.Fatalf("the error %q leaks the secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.want(base); got != want {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
			arns := 0
			for k := range tt.env {
				if strings.HasSuffix(k, "_SECRET_ARN") {
					arns++
				}
			}
			if read != arns {
				t.Fatalf("read %d secrets, want %d", read, len(tt.env))
			}
		})
	}
}

// TestRotatingPassword: a new connection within PasswordFresh of the last read uses that
// password; later it reads the secret again and takes the rotated password; a failed or bad
// read keeps the last password (it may still be right) and is tried again next time.
func TestRotatingPassword(t *testing.T) {
	t.Parallel()
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lastunit/postgres-app-AbCdEf"
	start := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	type conn struct {
		after  time.Duration // since the cold start
		secret string        // what Secrets Manager answers then ("" : an error)
		want   string
	}
	tests := []struct {
		name  string
		conns []conn
		reads int
	}{
		{"the cold start's connection uses the password just read", []conn{{0, `{"password":"new"}`, "old"}, {PasswordFresh - time.Second, `{"password":"new"}`, "old"}}, 0},
		{"after rotation a later connection takes the new password", []conn{{PasswordFresh, `{"password":"new"}`, "new"}, {PasswordFresh + time.Second, `{"password":"newer"}`, "new"}}, 1},
		{"a failed read keeps the last password and tries again", []conn{{2 * PasswordFresh, "", "old"}, {2*PasswordFresh + time.Second, `{"password":"new"}`, "new"}}, 2},
		{"a secret without a password keeps the last one", []conn{{2 * PasswordFresh, `{"username":"x"}`, "old"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now, answer, reads := start, "", 0
			get := func(_ context.Context, a string) (string, error) {
				reads++
				if a != arn {
					t.Errorf("read %s", a)
				}
				if answer == "" {
					return "", errors.New("throttled")
				}
				return answer, nil
			}
			pw, err := RotatingPasswordWith(get, arn, "postgres://lastunit_app:old@proxy:5432/lastunit?sslmode=verify-full", func() time.Time { return now })
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range tt.conns {
				now, answer = start.Add(c.after), c.secret
				got, err := pw(context.Background())
				if err != nil || got != c.want {
					t.Errorf("connection %d: %q, %v; want %q", i, got, err, c.want)
				}
			}
			if reads != tt.reads {
				t.Errorf("%d reads, want %d", reads, tt.reads)
			}
		})
	}
	if _, err := RotatingPasswordWith(nil, arn, "postgres://proxy:5432/lastunit", time.Now); err == nil {
		t.Error("a URL without credentials was accepted")
	}
}

// TestNeeds: the functions that call Stripe need only the API key; the webhook function
// alone needs the signing secret too (the stack gives it to no other function).
func TestNeeds(t *testing.T) {
	t.Parallel()
	withKey := &App{Stripe: payment.New(payment.Config{SecretKey: "sk_test_x"})}
	withBoth := &App{Stripe: withKey.Stripe, Config: Config{StripeWebhookSecret: "whsec_y"}}
	tests := []struct {
		name    string
		app     *App
		needs   []Need
		wantErr string
	}{
		{"nothing needed", &App{}, nil, ""},
		{"API key present", withKey, []Need{NeedStripe}, ""},
		{"API key missing", &App{}, []Need{NeedStripe}, "STRIPE_SECRET_KEY is required"},
		{"webhook: signing secret missing", withKey, []Need{NeedStripe, NeedStripeWebhook}, "STRIPE_WEBHOOK_SECRET is required"},
		{"webhook: both present", withBoth, []Need{NeedStripe, NeedStripeWebhook}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.app.check(tt.needs)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("check(%v) = %v, want %q", tt.needs, err, tt.wantErr)
			}
		})
	}
}

// TestVerifyFullChecksTheProxysName: the URL the stack's settings give makes pgx verify the
// server's certificate chain against the system's roots and its name against the proxy's host.
func TestVerifyFullChecksTheProxysName(t *testing.T) {
	const host = "lastunit-postgres.proxy-abc123.eu-west-1.rds.amazonaws.com"
	u, err := databaseURL(`{"username":"lastunit_app","password":"pw"}`, host, "verify-full")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgconn.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	tc := cfg.TLSConfig
	if tc == nil || tc.InsecureSkipVerify || tc.ServerName != host || tc.RootCAs != nil {
		t.Fatalf("TLS config %+v: want verification of %s against the system roots", tc, host)
	}
	for _, fb := range cfg.Fallbacks {
		if fb.TLSConfig == nil {
			t.Fatal("a fallback connects without TLS")
		}
	}
	req, _ := databaseURL(`{"username":"u","password":"p","host":"h"}`, "", "")
	rc, err := pgconn.ParseConfig(req)
	if err != nil || rc.TLSConfig == nil || !rc.TLSConfig.InsecureSkipVerify {
		t.Fatalf("the default (require) should encrypt without verifying: %+v %v", rc.TLSConfig, err)
	}
}

// TestResolveAppRoleWith: the migrate function reads the application role's name and
// password; nothing named reads nothing; a broken secret names its variable, not its value.
func TestResolveAppRoleWith(t *testing.T) {
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lastunit/postgres-app-AbCdEf"
	tests := []struct {
		name, secret string
		env          bool
		want         AppRole
		wantOK       bool
		wantErr      string
	}{
		{name: "nothing named"},
		{name: "role", env: true, secret: `{"username":"lastunit_app","password":"s3cret"}`, want: AppRole{"lastunit_app", "s3cret"}, wantOK: true},
		{name: "no password", env: true, secret: `{"username":"lastunit_app"}`, wantErr: "lacks username or password"},
		{name: "not JSON", env: true, secret: `s3cret`, wantErr: "APP_DATABASE_SECRET_ARN: the secret is not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := 0
			get := func(_ context.Context, a string) (string, error) {
				read++
				if a != arn {
					return "", errors.New("no such secret")
				}
				return tt.secret, nil
			}
			getenv := func(k string) string {
				if tt.env && k == EnvAppDatabaseSecretARN {
					return arn
				}
				return ""
			}
			got, ok, err := ResolveAppRoleWith(context.Background(), get, getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("err = %v, want one containing %q and no secret", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || ok != tt.wantOK {
				t.Fatalf("got %+v %v %v, want %+v %v", got, ok, err, tt.want, tt.wantOK)
			}
			if !tt.env && read != 0 {
				t.Fatalf("read %d secrets with none named", read)
			}
		})
	}
}

// TestSecretsManagerCall checks the signed GetSecretValue request against a stand-in server.
func TestSecretsManagerCall(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    string
		wantErr string
	}{
		{"ok", 200, `{"ARN":"x","SecretString":"the-value"}`, "the-value", ""},
		{"not found", 400, `{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`, "", "ResourceNotFoundException"},
		{"binary secret", 200, `{"ARN":"x","SecretBinary":"AAEC"}`, "", "binary secrets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var in struct{ SecretId string }
				b, _ := io.ReadAll(r.Body)
				_ = json.Unmarshal(b, &in)
				if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || in.SecretId != "arn:test" ||
					!strings.Contains(r.Header.Get("Authorization"), "/secretsmanager/aws4_request") {
					http.Error(w, `{"__type":"BadRequest"}`, 400)
					return
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			get := secretsManagerAt(t, srv.URL)
			got, err := get(context.Background(), "arn:test")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestSecretsManagerCallRetries: at a drop a thousand cold starts read their secrets at once;
// a throttled or failing answer is tried again, a final one (not found) is not, and a
// Secrets Manager that stays down fails after the tries.
func TestSecretsManagerCallRetries(t *testing.T) {
	tests := []struct {
		name      string
		answers   []int // status of each answer in turn (the last repeats)
		throttle  bool  // 400 answers say ThrottlingException, else ResourceNotFoundException
		wantCalls int
		wantErr   bool
	}{
		{"throttled twice", []int{400, 400, 200}, true, 3, false},
		{"a server error", []int{503, 200}, false, 2, false},
		{"not found is final", []int{400}, false, 1, true},
		{"down", []int{500}, false, secretTries, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls int
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				st := tt.answers[min(calls, len(tt.answers)-1)]
				calls++
				w.WriteHeader(st)
				switch {
				case st == 200:
					_, _ = w.Write([]byte(`{"SecretString":"v"}`))
				case tt.throttle:
					_, _ = w.Write([]byte(`{"__type":"ThrottlingException","message":"Rate exceeded"}`))
				default:
					_, _ = w.Write([]byte(`{"__type":"ResourceNotFoundException","message":"no"}`))
				}
			}))
			defer srv.Close()
			get := secretsManagerAt(t, srv.URL)
			_, err := get(context.Background(), "arn:test")
			if (err != nil) != tt.wantErr || calls != tt.wantCalls {
				t.Fatalf("err %v after %d calls; want error %v after %d", err, calls, tt.wantErr, tt.wantCalls)
			}
		})
	}
}

// secretsManagerAt is the real Secrets Manager call, signed with test credentials, aimed at a
// stand-in server.
func secretsManagerAt(t *testing.T, endpoint string) SecretGetter {
	t.Helper()
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "eu-west-1")
	get, err := newSecretsManager(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return get
}
