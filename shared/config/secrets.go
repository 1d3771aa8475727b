package config

// In AWS the CDK stack (infra/) never puts a secret in a function's environment: it passes
// the ARNs of Secrets Manager secrets, and Resolve reads them once per cold start.
//
//	DATABASE_SECRET_ARN      RDS credentials {"username","password","host","port","dbname"} → DatabaseURL
//	REDIS_AUTH_SECRET_ARN    the ElastiCache AUTH token (plain string) → the password of RedisURL
//	STRIPE_SECRET_ARN        {"secret_key"} → StripeSecretKey (the API key; a "webhook_secret"
//	                         in it is read too, for a secret made before the split)
//	STRIPE_WEBHOOK_SECRET_ARN {"webhook_secret"} → StripeWebhookSecret (the endpoint's signing
//	                         secret: the stack names it to the webhook function only)
//	APP_DATABASE_SECRET_ARN  the application role's {"username","password"} (only the migrate
//	                         function reads it: ResolveAppRole, to create or update the role)
//
// DATABASE_HOST, when set, replaces the secret's host: the stack points every function at the
// RDS Proxy endpoint while the secrets keep what RDS wrote (the master secret names the
// instance; the application role's secret names no host). The functions use the application
// role's secret; only the migrate function reads the master secret.
//
// TLS: DATABASE_SSLMODE, default require (encrypted; the certificate is not checked). The
// stack sets verify-full for the functions behind the RDS Proxy: the proxy's certificate comes
// from AWS Certificate Manager and chains to the Amazon roots of the system's trust store, so
// no RDS certificate bundle is needed (the instance's own certificate would need one).
//
// Locally none of them is set and nothing is called. The call is one signed GetSecretValue
// per secret over HTTPS (the SDK's SigV4 signer and credential chain; no extra module).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

// Environment variables naming Secrets Manager secrets.
const (
	EnvDatabaseSecretARN  = "DATABASE_SECRET_ARN"
	EnvRedisAuthSecretARN = "REDIS_AUTH_SECRET_ARN"
	EnvStripeSecretARN    = "STRIPE_SECRET_ARN"
	// EnvStripeWebhookSecretARN names the webhook signing secret's own secret (the webhook function only).
	EnvStripeWebhookSecretARN = "STRIPE_WEBHOOK_SECRET_ARN"
	// EnvAppDatabaseSecretARN names the application role's secret (ResolveAppRole).
	EnvAppDatabaseSecretARN = "APP_DATABASE_SECRET_ARN"
	// EnvDatabaseHost overrides the database secret's host (the RDS Proxy endpoint).
	EnvDatabaseHost = "DATABASE_HOST"
	// EnvDatabaseSSLMode is the URL's sslmode: require (default), verify-ca or verify-full.
	EnvDatabaseSSLMode = "DATABASE_SSLMODE"
)

// SecretGetter returns a secret's SecretString.
type SecretGetter func(ctx context.Context, arn string) (string, error)

// Resolve fills in c's secrets from the Secrets Manager secrets the environment names, using
// Secrets Manager in the function's region. With none named it returns c unchanged.
func Resolve(ctx context.Context, c Config) (Config, error) {
	named := false
	for _, name := range []string{EnvDatabaseSecretARN, EnvRedisAuthSecretARN, EnvStripeSecretARN, EnvStripeWebhookSecretARN} {
		named = named || os.Getenv(name) != ""
	}
	if !named {
		return c, nil
	}
	get, err := newSecretsManager(ctx)
	if err != nil {
		return c, err
	}
	return ResolveWith(ctx, c, get, os.Getenv)
}

// ResolveWith is Resolve with the secret reader and the environment given.
func ResolveWith(ctx context.Context, c Config, get SecretGetter, getenv func(string) string) (Config, error) {
	if arn := getenv(EnvDatabaseSecretARN); arn != "" {
		s, err := get(ctx, arn)
		if err != nil {
			return c, fmt.Errorf("%s: %w", EnvDatabaseSecretARN, err)
		}
		if c.DatabaseURL, err = databaseURL(s, getenv(EnvDatabaseHost), getenv(EnvDatabaseSSLMode)); err != nil {
			return c, fmt.Errorf("%s: %w", EnvDatabaseSecretARN, err)
		}
	}
	if arn := getenv(EnvRedisAuthSecretARN); arn != "" {
		token, err := get(ctx, arn)
		if err != nil {
			return c, fmt.Errorf("%s: %w", EnvRedisAuthSecretARN, err)
		}
		u, err := url.Parse(c.RedisURL)
		if err != nil || u.Host == "" {
			return c, fmt.Errorf("%s: REDIS_URL is not a URL", EnvRedisAuthSecretARN)
		}
		if token == "" {
			return c, fmt.Errorf("%s: the secret is empty", EnvRedisAuthSecretARN)
		}
		u.User = url.UserPassword("", token) // AUTH <token>: ElastiCache's AUTH token, no ACL user
		c.RedisURL = u.String()
	}
	if arn := getenv(EnvStripeSecretARN); arn != "" {
		s, err := get(ctx, arn)
		if err != nil {
			return c, fmt.Errorf("%s: %w", EnvStripeSecretARN, err)
		}
		var keys struct {
			SecretKey     string `json:"secret_key"`
			WebhookSecret string `json:"webhook_secret"`
		}
		if err := json.Unmarshal([]byte(s), &keys); err != nil {
			return c, fmt.Errorf("%s: the secret is not JSON {\"secret_key\",\"webhook_secret\"}", EnvStripeSecretARN)
		}
		// Empty values (the stack's placeholder) stay unset, so NeedStripe says what is missing.
		if keys.SecretKey != "" {
			c.StripeSecretKey = keys.SecretKey
		}
		if keys.WebhookSecret != "" {
			c.StripeWebhookSecret = keys.WebhookSecret
		}
	}
	if arn := getenv(EnvStripeWebhookSecretARN); arn != "" {
		s, err := get(ctx, arn)
		if err != nil {
			return c, fmt.Errorf("%s: %w", EnvStripeWebhookSecretARN, err)
		}
		var keys struct {
			WebhookSecret string `json:"webhook_secret"`
		}
		if err := json.Unmarshal([]byte(s), &keys); err != nil {
			return c, fmt.Errorf("%s: the secret is not JSON {\"webhook_secret\"}", EnvStripeWebhookSecretARN)
		}
		if keys.WebhookSecret != "" { // the stack's empty placeholder stays unset (NeedStripeWebhook)
			c.StripeWebhookSecret = keys.WebhookSecret
		}
	}
	return c, nil
}

// PasswordFresh is how long RotatingPassword trusts the password it read last: a new
// connection after that reads the secret again. A warm function opens new connections
// rarely (one connection per environment, kept open), so this costs little, and a cold
// start's first connection uses the password just read.
const PasswordFresh = time.Minute

// RotatingPassword returns the password source of the database secret DATABASE_SECRET_ARN
// names (nil when none is named, as locally): the stack rotates that secret (single-user
// rotation changes the password in place), and a warm function's new connection must log in
// with the new password, not the one of its cold start. c is the resolved configuration.
func RotatingPassword(ctx context.Context, c Config) (func(context.Context) (string, error), error) {
	arn := os.Getenv(EnvDatabaseSecretARN)
	if arn == "" {
		return nil, nil
	}
	get, err := newSecretsManager(ctx)
	if err != nil {
		return nil, err
	}
	return RotatingPasswordWith(get, arn, c.DatabaseURL, time.Now)
}

// RotatingPasswordWith is RotatingPassword with the secret reader and the clock given; the
// password of databaseURL (just read from the secret) is fresh now. Past PasswordFresh the
// secret is read again; if that read fails, the last password is tried (it may still be the
// right one) and the read is tried again at the next connection.
func RotatingPasswordWith(get SecretGetter, arn, databaseURL string, now func() time.Time) (func(context.Context) (string, error), error) {
	u, err := url.Parse(databaseURL)
	if err != nil || u.User == nil {
		return nil, fmt.Errorf("%s: the database URL has no credentials", EnvDatabaseSecretARN)
	}
	pw, _ := u.User.Password()
	var mu sync.Mutex
	readAt := now()
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if now().Sub(readAt) < PasswordFresh {
			return pw, nil
		}
		s, err := get(ctx, arn)
		if err != nil {
			return pw, nil
		}
		var creds struct {
			Password string `json:"password"`
		}
		if json.Unmarshal([]byte(s), &creds) != nil || creds.Password == "" {
			return pw, nil
		}
		pw, readAt = creds.Password, now()
		return pw, nil
	}, nil
}

// AppRole is the login role the functions connect as (store.EnsureAppRole).
type AppRole struct {
	Name, Password string
}

// ResolveAppRole reads the application role's secret that APP_DATABASE_SECRET_ARN names
// (the migrate function). ok is false when none is named (locally: the runner connects as
// the owner).
func ResolveAppRole(ctx context.Context) (role AppRole, ok bool, err error) {
	if os.Getenv(EnvAppDatabaseSecretARN) == "" {
		return AppRole{}, false, nil
	}
	get, err := newSecretsManager(ctx)
	if err != nil {
		return AppRole{}, false, err
	}
	return ResolveAppRoleWith(ctx, get, os.Getenv)
}

// ResolveAppRoleWith is ResolveAppRole with the secret reader and the environment given.
func ResolveAppRoleWith(ctx context.Context, get SecretGetter, getenv func(string) string) (AppRole, bool, error) {
	arn := getenv(EnvAppDatabaseSecretARN)
	if arn == "" {
		return AppRole{}, false, nil
	}
	s, err := get(ctx, arn)
	if err != nil {
		return AppRole{}, false, fmt.Errorf("%s: %w", EnvAppDatabaseSecretARN, err)
	}
	var creds struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal([]byte(s), &creds); err != nil {
		return AppRole{}, false, fmt.Errorf("%s: the secret is not JSON {\"username\",\"password\"}", EnvAppDatabaseSecretARN)
	}
	if creds.Username == "" || creds.Password == "" {
		return AppRole{}, false, fmt.Errorf("%s: the secret lacks username or password", EnvAppDatabaseSecretARN)
	}
	return AppRole{Name: creds.Username, Password: creds.Password}, true, nil
}

// databaseURL builds a pgx URL from an RDS credentials secret; host, if not empty, replaces
// the secret's (DATABASE_HOST: the proxy); sslmode is require unless given (DATABASE_SSLMODE).
func databaseURL(secret, host, sslmode string) (string, error) {
	switch sslmode {
	case "":
		sslmode = "require"
	case "require", "verify-ca", "verify-full":
	default:
		return "", fmt.Errorf("%s must be require, verify-ca or verify-full", EnvDatabaseSSLMode)
	}
	var s struct {
		Username string          `json:"username"`
		Password string          `json:"password"`
		Host     string          `json:"host"`
		Port     json.RawMessage `json:"port"` // RDS writes a number; people write strings
		DBName   string          `json:"dbname"`
	}
	if err := json.Unmarshal([]byte(secret), &s); err != nil {
		return "", fmt.Errorf("the secret is not RDS credentials JSON")
	}
	if host != "" {
		s.Host = host
	}
	if s.Username == "" || s.Password == "" || s.Host == "" {
		return "", fmt.Errorf("the secret lacks username, password or host")
	}
	port := strings.Trim(string(s.Port), `"`)
	if port == "" {
		port = "5432"
	}
	if _, err := strconv.Atoi(port); err != nil {
		return "", fmt.Errorf("the secret's port is not a number")
	}
	if s.DBName == "" {
		s.DBName = "lastunit"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(s.Username, s.Password),
		Host:     s.Host + ":" + port,
		Path:     "/" + s.DBName,
		RawQuery: "sslmode=" + sslmode,
	}
	return u.String(), nil
}

// newSecretsManager returns a GetSecretValue call signed with the default credential chain.
// AWS_ENDPOINT_URL_SECRETS_MANAGER or AWS_ENDPOINT_URL (LocalStack) overrides the endpoint.
func newSecretsManager(ctx context.Context) (SecretGetter, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
	if endpoint == "" {
		endpoint = aws.ToString(cfg.BaseEndpoint)
	}
	if endpoint == "" {
		domain := "amazonaws.com"
		if strings.HasPrefix(cfg.Region, "cn-") {
			domain = "amazonaws.com.cn"
		}
		endpoint = "https://secretsmanager." + cfg.Region + "." + domain
	}
	client := &http.Client{Timeout: 10 * time.Second}
	signer := v4.NewSigner()
	once := func(ctx context.Context, arn string) (string, error) {
		body, _ := json.Marshal(map[string]string{"SecretId": arn})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", bytes.NewReader(body))
		if err != nil {
			return "", fmt.Errorf("get secret: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
		creds, err := cfg.Credentials.Retrieve(ctx)
		if err != nil {
			return "", fmt.Errorf("get secret: credentials: %w", err)
		}
		sum := sha256.Sum256(body)
		if err := signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "secretsmanager", cfg.Region, time.Now()); err != nil {
			return "", fmt.Errorf("get secret: sign: %w", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", fmt.Errorf("get secret: %w", err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return "", fmt.Errorf("get secret: read: %w", err)
		}
		var out struct {
			SecretString *string `json:"SecretString"`
			Type         string  `json:"__type"`
			Message      string  `json:"message"`
		}
		_ = json.Unmarshal(raw, &out)
		if resp.StatusCode != http.StatusOK {
			err := fmt.Errorf("get secret: %s %s: %s", resp.Status, out.Type, out.Message)
			if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || strings.Contains(out.Type, "Throttling") {
				err = fmt.Errorf("%w: %w", errRetrySecret, err)
			}
			return "", err
		}
		if out.SecretString == nil {
			return "", fmt.Errorf("get secret: no SecretString (binary secrets are not supported)")
		}
		return *out.SecretString, nil
	}
	return retrySecrets(once, secretTries, secretBackoff), nil
}

// A thousand cold starts at a drop read their secrets at once: a throttled or failed read is
// tried again (secretTries in all, the waits growing from secretBackoff) before the cold start
// gives up, well inside Lambda's 10 s for an environment's init.
const (
	secretTries   = 4
	secretBackoff = 200 * time.Millisecond
)

// errRetrySecret marks a Secrets Manager answer worth trying again: throttled or a server error.
var errRetrySecret = errors.New("secrets manager busy")

// retrySecrets tries get again, up to tries in all, after a network error or an answer marked
// errRetrySecret, waiting backoff, then 3×, 9× as long (bounded by ctx).
func retrySecrets(get SecretGetter, tries int, backoff time.Duration) SecretGetter {
	return func(ctx context.Context, arn string) (string, error) {
		var err error
		wait := backoff
		for i := 0; i < tries; i++ {
			var v string
			if v, err = get(ctx, arn); err == nil {
				return v, nil
			}
			var ne net.Error
			if !errors.Is(err, errRetrySecret) && !errors.As(err, &ne) || i == tries-1 {
				break
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return "", err
			case <-t.C:
			}
			wait *= 3
		}
		return "", err
	}
}
