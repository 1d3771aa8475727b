// Command infra is lastunit's CDK app: `cdk synth` (make synth) and `cdk deploy` (make deploy)
// run it. It deploys the packages that `make package` builds into ../build/<name>.zip.
//
// Context (cdk.json or -c): prefix, stripeSecretArn (the Stripe API key's secret),
// stripeWebhookSecretArn (the webhook signing secret's, read by the webhook function only), alarmEmail, production (true/false),
// logRetentionDays, buildDir, stackName, arch (arm64 or x86_64, as `make package` built),
// localstack (true: the LocalStack variant, see localstack/README.md), localstackApis
// (true: keep Cognito and API Gateway v2, which need LocalStack Pro), webDir (the pages,
// ../web), stripePublishableKey (into the pages' config.json and its CSP), siteDomain and
// siteCertificateArn (the pages on a domain of one's own, an ACM certificate in us-east-1:
// TLS 1.2 or later for viewers).
//
// dbSslMode (verify-full: the functions check the RDS Proxy's certificate; require).
//
// tracing (true; false: no X-Ray active tracing on the functions, read by the stack itself,
// stack.TracingContext).
//
// The drop (README: "Before the drop"): dbInstanceClass (t4g.micro, ...: infra/stack/budget.go),
// dbMaxConnections (the instance's max_connections if not the table's), proxyMaxConnectionsPercent
// (90), accountConcurrency (the account's Lambda quota, 1000), concurrency ("reserve=40,checkout=20":
// reserved concurrency overrides), apiRate, apiBurst, wsRate, wsBurst (stage throttles),
// prewarm ("reserve=20,checkout=10" or "20" for both) with prewarmFrom and prewarmUntil (RFC 3339
// times: provisioned concurrency in that window, `make prewarm`), waf (true: the APIs behind
// CloudFront with rate-based rules; the stack must be in us-east-1), wafRateLimit and
// wafWriteRateLimit (requests per IP per 5 minutes).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"lastunit/infra/stack"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	ctx := func(key, def string) string {
		if v, ok := app.Node().TryGetContext(jsii.String(key)).(string); ok && v != "" {
			return v
		}
		return def
	}
	buildDir := ctx("buildDir", "../build")
	for _, name := range stack.FunctionNames() {
		if _, err := os.Stat(filepath.Join(buildDir, name+".zip")); err != nil {
			fmt.Fprintf(os.Stderr, "infra: %s.zip is missing in %s: run `make package` first\n", name, buildDir)
			os.Exit(1)
		}
	}
	days, err := strconv.Atoi(ctx("logRetentionDays", "30"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "infra: logRetentionDays must be a number of days")
		os.Exit(1)
	}
	num := func(key string) int {
		v := ctx(key, "0")
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			fail("%s must be a whole number, got %q", key, v)
		}
		return n
	}
	when := func(key string) time.Time {
		v := ctx(key, "")
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			fail("%s must be an RFC 3339 time such as 2026-12-01T17:45:00Z, got %q", key, v)
		}
		return t
	}
	concurrency, err := stack.ParseCounts(ctx("concurrency", ""))
	if err != nil {
		fail("concurrency: %v", err)
	}
	prewarm, err := stack.ParseCounts(ctx("prewarm", ""), stack.Prewarmable...)
	if err != nil {
		fail("prewarm: %v", err)
	}
	stack.New(app, ctx("stackName", "Lastunit"), stack.Props{
		StackProps: awscdk.StackProps{
			Description: jsii.String("lastunit: scarce-stock reservations on Lambda, Postgres, Redis and SQS"),
			// Account and region come from the CLI's environment at deploy time; synth needs neither.
			Env: &awscdk.Environment{Account: envOrNil("CDK_DEFAULT_ACCOUNT"), Region: envOrNil("CDK_DEFAULT_REGION")},
		},
		Prefix:                 ctx("prefix", "lastunit"),
		StripeSecretArn:        ctx("stripeSecretArn", ""),
		StripeWebhookSecretArn: ctx("stripeWebhookSecretArn", ""),
		AlarmEmail:             ctx("alarmEmail", ""),
		Production:             ctx("production", "false") == "true",
		LogRetentionDays:       days,
		Architecture:           ctx("arch", "arm64"),
		LocalStack:             ctx("localstack", "false") == "true",
		LocalStackAPIs:         ctx("localstackApis", "false") == "true",
		WebDir:                 ctx("webDir", "../web"),
		StripePublishableKey:   ctx("stripePublishableKey", ""),
		SiteDomain:             ctx("siteDomain", ""),
		SiteCertificateArn:     ctx("siteCertificateArn", ""),

		DBInstanceClass:            ctx("dbInstanceClass", stack.DefaultInstanceClass),
		DBSSLMode:                  ctx("dbSslMode", "verify-full"),
		DBMaxConnections:           num("dbMaxConnections"),
		ProxyMaxConnectionsPercent: num("proxyMaxConnectionsPercent"),
		AccountConcurrency:         num("accountConcurrency"),
		Concurrency:                concurrency,
		APIRate:                    num("apiRate"),
		APIBurst:                   num("apiBurst"),
		WSRate:                     num("wsRate"),
		WSBurst:                    num("wsBurst"),
		Prewarm:                    prewarm,
		PrewarmFrom:                when("prewarmFrom"),
		PrewarmUntil:               when("prewarmUntil"),
		WAF:                        ctx("waf", "false") == "true",
		WAFRateLimit:               num("wafRateLimit"),
		WAFWriteRateLimit:          num("wafWriteRateLimit"),
		Code: func(name string) awslambda.Code {
			return awslambda.Code_FromAsset(jsii.String(filepath.Join(buildDir, name+".zip")), nil)
		},
	})
	app.Synth(nil)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "infra: "+format+"\n", args...)
	os.Exit(1)
}

func envOrNil(name string) *string {
	if v := os.Getenv(name); v != "" {
		return jsii.String(v)
	}
	return nil
}
