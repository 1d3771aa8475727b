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
)

func TestResolveWith(t *testing.T) {
	const (
		dbARN     = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lastunit/postgres-AbCdEf"
		redisARN  = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lastunit/redis-auth-AbCdEf"
		stripeARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lastunit/stripe-AbCdEf"
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
			if read != len(tt.env) {
				t.Fatalf("read %d secrets, want %d", read, len(tt.env))
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
			t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", srv.URL)
			t.Setenv("AWS_ACCESS_KEY_ID", "test")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
			t.Setenv("AWS_REGION", "eu-west-1")
			get, err := newSecretsManager(context.Background())
			if err != nil {
				t.Fatal(err)
			}
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
