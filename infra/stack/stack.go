// Package stack is lastunit's AWS CDK stack: the network, Postgres, Redis, the queues, the
// nine functions with their least-privilege roles, the HTTP and WebSocket APIs with Cognito,
// the schedules, the alarms and the outputs. DESIGN.md is the shape it deploys.
package stack

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/triggers"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Props configures the stack.
type Props struct {
	awscdk.StackProps
	// Prefix names the functions, queues, secrets and log groups ("lastunit").
	Prefix string
	// Code returns the deployment package of functions/<name> (cmd: build/<name>.zip).
	Code func(name string) awslambda.Code
	// StripeSecretArn is an existing secret's complete ARN holding the API key
	// {"secret_key": "..."}; "" creates an empty one to fill in (make stripe-keys).
	StripeSecretArn string
	// StripeWebhookSecretArn is an existing secret's complete ARN holding the webhook
	// endpoint's signing secret {"webhook_secret": "..."}, which only the webhook function
	// reads; "" creates an empty one to fill in.
	StripeWebhookSecretArn string
	// AlarmEmail, if set, is subscribed to the alarm topic.
	AlarmEmail string
	// Production keeps data on delete (snapshot, retain) and turns on RDS Multi-AZ and deletion protection.
	Production bool
	// LogRetentionDays is every function's log retention (default 30).
	LogRetentionDays int
	// ReservationTTL, PaymentWindow and FailedJobMaxAge are the functions' timing knobs (Go durations).
	ReservationTTL, PaymentWindow, FailedJobMaxAge string
	// Architecture is the functions' architecture: "arm64" (default) or "x86_64" (LocalStack on
	// an x86 machine runs arm64 functions only under emulation).
	Architecture string
	// LocalStack deploys to LocalStack (localstack/): no VPC, RDS or ElastiCache (the compose
	// file's Postgres and Redis instead, reached by their service names), stripe-mock for Stripe.
	LocalStack bool
	// LocalStackAPIs keeps Cognito and the API Gateway v2 APIs in LocalStack mode (they need
	// LocalStack Pro).
	LocalStackAPIs bool
	// WebDir is the pages' directory (web/), deployed to S3 behind CloudFront; required
	// outside LocalStack (cmd: ../web).
	WebDir string
	// SiteDomain and SiteCertificateArn put the pages (and, with WAF, the APIs) on a domain of
	// one's own: an ACM certificate in us-east-1 that covers SiteDomain; then viewers need TLS
	// 1.2 or later. The DNS record (an alias or CNAME to the distribution) is the operator's.
	SiteDomain, SiteCertificateArn string
	// StripePublishableKey goes into the pages' config.json ("" : no Payment Element) and, when
	// set, lets Stripe's origins into the pages' Content-Security-Policy.
	StripePublishableKey string

	// DBSSLMode is DATABASE_SSLMODE of the functions behind the proxy (default verify-full: the
	// proxy's ACM certificate against the system's Amazon roots; require only encrypts).
	DBSSLMode string
	// DBInstanceClass is the RDS instance class without "db." (InstanceClasses; default t4g.micro).
	DBInstanceClass string
	// DBMaxConnections replaces the class's max_connections in the budget (0: the table's).
	DBMaxConnections int
	// ProxyMaxConnectionsPercent is the RDS Proxy's share of max_connections (default 90).
	ProxyMaxConnectionsPercent int
	// AccountConcurrency is the account's Lambda concurrency quota in the region (default 1000):
	// the default reserved concurrency leaves 200 of it unreserved.
	AccountConcurrency int
	// Concurrency overrides functions' reserved concurrency (budget.go computes the defaults
	// from the instance class); the sum over the Postgres functions of concurrency × pool size
	// must fit the proxy's connections or New panics.
	Concurrency map[string]int
	// APIRate and APIBurst throttle the HTTP API's stage; WSRate and WSBurst the WebSocket
	// API's (requests, or messages, per second; 0: the defaults).
	APIRate, APIBurst, WSRate, WSBurst int
	// Prewarm is provisioned concurrency per function (reserve and checkout only) from
	// PrewarmFrom until PrewarmUntil, on the functions' "live" alias (prewarm.go).
	Prewarm                   map[string]int
	PrewarmFrom, PrewarmUntil time.Time
	// WAF puts the APIs behind the pages' CloudFront distribution with a WAF web ACL of
	// rate-based rules (edge.go); WAFRateLimit and WAFWriteRateLimit are requests per IP per
	// five minutes, for every request and for POSTs (0: the defaults).
	WAF                             bool
	WAFRateLimit, WAFWriteRateLimit int
}

// withAPIs says whether the stack has the user pool and the HTTP and WebSocket APIs.
func (p Props) withAPIs() bool { return !p.LocalStack || p.LocalStackAPIs }

func (p *Props) defaults() {
	if p.Prefix == "" {
		p.Prefix = "lastunit"
	}
	if p.LogRetentionDays == 0 {
		p.LogRetentionDays = 30
	}
	if p.ReservationTTL == "" {
		p.ReservationTTL = "10m"
	}
	if p.PaymentWindow == "" {
		p.PaymentWindow = "15m"
	}
	if p.Architecture == "" {
		p.Architecture = "arm64"
	}
	if p.FailedJobMaxAge == "" {
		p.FailedJobMaxAge = "24h"
	}
	if p.DBSSLMode == "" {
		p.DBSSLMode = "verify-full"
	}
	if p.DBInstanceClass == "" {
		p.DBInstanceClass = DefaultInstanceClass
	}
	p.DBInstanceClass = strings.TrimPrefix(p.DBInstanceClass, "db.")
	if p.ProxyMaxConnectionsPercent == 0 {
		p.ProxyMaxConnectionsPercent = DefaultProxyMaxConnectionsPercent
	}
	if p.AccountConcurrency == 0 {
		p.AccountConcurrency = DefaultAccountConcurrency
	}
	for _, d := range []struct {
		dst *int
		def int
	}{
		{&p.APIRate, DefaultAPIRate}, {&p.APIBurst, DefaultAPIBurst}, {&p.WSRate, DefaultWSRate}, {&p.WSBurst, DefaultWSBurst},
		{&p.WAFRateLimit, DefaultWAFRateLimit}, {&p.WAFWriteRateLimit, DefaultWAFWriteRateLimit},
	} {
		if *d.dst == 0 {
			*d.dst = d.def
		}
	}
}

// Stack is the synthesized stack and the resources tests and outputs refer to.
type Stack struct {
	// Stack is the CDK stack (a field, not embedded: jsii objects must not be embedded in a struct passed as a scope).
	Stack     awscdk.Stack
	Props     Props
	Network   *Network
	Data      *Data
	Queues    *Queues
	Functions map[string]awslambda.Function
	APIs      *APIs
	// Site is the pages in S3 behind CloudFront (nil in LocalStack).
	Site *Site
	// Aliases is the "live" alias of the functions that can be pre-warmed (prewarm.go).
	Aliases map[string]awslambda.Alias
	// Prewarm is the provisioned-concurrency schedule, when Props.Prewarm asks for one.
	Prewarm map[string]awsapplicationautoscaling.ScalableTarget
	// MigrateTrigger invokes the migrate function once per deploy (migrate.go).
	MigrateTrigger triggers.Trigger
	// Edge is the web ACL in front of the APIs (nil unless Props.WAF).
	Edge *Edge
	// AlarmTopic receives every alarm.
	AlarmTopic awssns.Topic
	// Alarms is every alarm by construct id; AlarmIDs lists them in the order they were made
	// (the business alarms first, then the dead letters, then the functions').
	Alarms   map[string]awscloudwatch.Alarm
	AlarmIDs []string
	// Dashboard is the drop's CloudWatch dashboard (observe.go).
	Dashboard awscloudwatch.Dashboard
	// Suppressed is every cdk-nag rule the stack suppresses somewhere (nag.go).
	Suppressed map[string]bool
}

// New builds the lastunit stack.
func New(scope constructs.Construct, id string, props Props) *Stack {
	props.defaults()
	if props.Code == nil {
		panic("stack.Props.Code is required")
	}
	if props.withSite() && props.WebDir == "" {
		panic("stack.Props.WebDir is required (the pages, web/)")
	}
	s := &Stack{Stack: awscdk.NewStack(scope, jsii.String(id), &props.StackProps), Props: props}
	// The proxy's target group takes no tags (CloudFormation refuses the property).
	awscdk.Tags_Of(s.Stack).Add(jsii.String("project"), jsii.String("lastunit"), &awscdk.TagProps{
		ExcludeResourceTypes: jsii.Strings("AWS::RDS::DBProxyTargetGroup"),
	})
	if (props.SiteDomain == "") != (props.SiteCertificateArn == "") {
		panic("stack.Props.SiteDomain and SiteCertificateArn go together")
	}
	if props.WAF && !props.withSite() {
		panic("stack.Props.WAF needs the pages' distribution (not in LocalStack)")
	}
	if props.LocalStack {
		s.Data = newLocalData(s.Stack, props)
	} else {
		s.Network = newNetwork(s.Stack, props)
		s.Data = newData(s.Stack, s.Network, props)
		s.newRedisRotation()
	}
	s.Queues = newQueues(s.Stack, props.Prefix)
	if props.withAPIs() {
		s.APIs = newIdentity(s.Stack, props.Prefix, props.withSite())
		s.newWebSocketAPI() // before the functions: their environment names its endpoint
	}
	s.Functions = map[string]awslambda.Function{}
	for _, f := range Functions {
		s.Functions[f.Name] = s.newFunction(f)
	}
	s.newAliases() // reserve's and checkout's "live" alias, which the routes invoke (prewarm.go)
	if props.withSite() {
		s.newSite() // before the HTTP API: its CORS names the distribution's origin
		s.newSignIn()
	}
	if props.withAPIs() {
		s.wireWebSocketAPI()
		s.newHTTPAPI()
	}
	if props.withSite() && props.WAF {
		s.newEdge() // the APIs behind the pages' distribution, with the web ACL (edge.go)
	}
	s.newMigrateTrigger() // after everything it must run before (migrate.go)
	if props.withSite() {
		s.deploySite() // config.json names both APIs
	}
	s.newSchedules()
	s.newAlarms()
	s.newDashboard()
	s.newOutputs()
	if s.APIs != nil {
		s.newSignInOutputs()
	}
	s.nagSuppressions()
	return s
}

// environment is what the functions' shared/config reads. Secrets are ARNs, resolved at cold
// start (shared/config/secrets.go); AWS_REGION is set by Lambda itself. Only the functions
// that use Postgres get a database secret: the application role's, or the master's for the
// migrate function, with the proxy as DATABASE_HOST. No function migrates at start: the
// migrate function runs once per deploy (migrate.go).
func (s *Stack) environment(f Function) map[string]*string {
	if f.Owner {
		env := map[string]*string{
			"DATABASE_SECRET_ARN":     s.Data.DBSecret.SecretArn(),
			"APP_DATABASE_SECRET_ARN": s.Data.AppSecret.SecretArn(),
		}
		if s.Data.DatabaseHost != nil {
			env["DATABASE_HOST"] = s.Data.DatabaseHost
			env["DATABASE_SSLMODE"] = jsii.String(s.Props.DBSSLMode)
		}
		return env
	}
	env := map[string]*string{
		"REDIS_URL":          s.Data.RedisURL,
		"QUEUE_PREFIX":       jsii.String(s.Props.Prefix + "-"),
		"RESERVATION_TTL":    jsii.String(s.Props.ReservationTTL),
		"PAYMENT_WINDOW":     jsii.String(s.Props.PaymentWindow),
		"FAILED_JOB_MAX_AGE": jsii.String(s.Props.FailedJobMaxAge),
	}
	if f.Postgres {
		env["DATABASE_SECRET_ARN"] = s.Data.AppSecret.SecretArn()
		env["DB_MAX_CONNS"] = jsii.String(strconv.Itoa(f.DBMaxConns))
		if s.Data.DatabaseHost != nil {
			env["DATABASE_HOST"] = s.Data.DatabaseHost
			env["DATABASE_SSLMODE"] = jsii.String(s.Props.DBSSLMode)
		}
	}
	if s.Data.RedisAuth != nil {
		env["REDIS_AUTH_SECRET_ARN"] = s.Data.RedisAuth.SecretArn()
	}
	if s.Props.LocalStack && f.Stripe {
		env["STRIPE_API_BASE"] = jsii.String(LocalStripeAPIBase)
	}
	if f.SendFulfill || f.ConsumeFulfillDLQ {
		env["FULFILL_QUEUE_URL"] = s.Queues.Fulfill.QueueUrl()
	}
	if f.ConsumeFulfillDLQ {
		env["FULFILL_DLQ_URL"] = s.Queues.FulfillDLQ.QueueUrl()
	}
	if f.Stripe {
		env["STRIPE_SECRET_ARN"] = s.Data.Stripe.SecretArn()
	}
	if f.StripeWebhook {
		env["STRIPE_WEBHOOK_SECRET_ARN"] = s.Data.StripeWebhook.SecretArn()
	}
	if f.SendStockUpdates {
		env["STOCK_UPDATES_QUEUE_URL"] = s.Queues.StockUpdates.QueueUrl()
	}
	if s.APIs == nil {
		return env
	}
	if f.ManageConnections {
		env["WS_MANAGEMENT_ENDPOINT"] = s.APIs.WebSocketStage.CallbackUrl()
	}
	if f.VerifyTokens {
		env["JWT_ISSUER"] = awscdk.Fn_Join(jsii.String(""), &[]*string{
			jsii.String("https://cognito-idp."), awscdk.Aws_REGION(), jsii.String(".amazonaws.com/"), s.APIs.UserPool.UserPoolId(),
		})
		env["JWT_CLIENT_ID"] = s.APIs.UserPoolClient.UserPoolClientId()
	}
	return env
}

// privateSubnets is where the functions run: private, with a route out through the NAT
// gateway (Stripe and the AWS APIs).
func privateSubnets() *awsec2.SubnetSelection {
	return &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS}
}

func seconds(n int) awscdk.Duration { return awscdk.Duration_Seconds(jsii.Number(float64(n))) }

func name(prefix, suffix string) *string { return jsii.String(fmt.Sprintf("%s-%s", prefix, suffix)) }
