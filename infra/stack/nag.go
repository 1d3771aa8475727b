package stack

import (
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// The stack is checked by cdk-nag's AwsSolutions and Serverless packs (nag_test.go: any
// error or warning fails `make test`). What the packs find and the stack accepts is
// suppressed here, on the resource it concerns and with its reason; docs/deploy-checks.md
// lists every one (TestNagSuppressionsDocumented).

// Managed policies the functions' roles use (IAM4's findings name them so).
const (
	policyBasicExecution = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
	policyVPCAccess      = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
	policyAPIGatewayLogs = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
)

// Reasons shared by several resources.
const (
	reasonManagedPolicies = "AWS's managed Lambda execution policies: logs to the function's own log group, and the network " +
		"interfaces a function in a VPC needs. AWS keeps them minimal and current; a copy would only drift."
	reasonXRay = "X-Ray's PutTraceSegments and PutTelemetryRecords take no resource (IAM supports only \"*\"); " +
		"every other statement names its resource (TestNoWildcards)."
	reasonNoTracing = "X-Ray is turned off by the operator (context tracing=false): the functions' JSON logs and the EMF metrics remain; " +
		"deploy without the flag to trace again."
	reasonSyncDLQ = "Invoked synchronously (API Gateway, an SQS event source, the deploy's trigger, Secrets Manager): " +
		"a Lambda dead-letter queue only ever receives failed asynchronous invocations, and none happen here. " +
		"SQS messages dead-letter through their queue's redrive policy."
)

// suppress accepts rule findings on c and its children, and records them for the docs.
func (s *Stack) suppress(c constructs.IConstruct, rule, reason string, appliesTo ...string) {
	sup := &cdknag.NagPackSuppression{Id: jsii.String(rule), Reason: jsii.String(reason)}
	if len(appliesTo) > 0 {
		var to []interface{}
		for _, a := range appliesTo {
			if strings.HasPrefix(a, "/") {
				to = append(to, &cdknag.RegexAppliesTo{Regex: jsii.String(a)})
			} else {
				to = append(to, a)
			}
		}
		sup.AppliesTo = &to
	}
	cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{sup}, jsii.Bool(true))
	if s.Suppressed == nil {
		s.Suppressed = map[string]bool{}
	}
	s.Suppressed[rule] = true
}

// SuppressedRules is every cdk-nag rule the stack suppresses somewhere, sorted.
func (s *Stack) SuppressedRules() []string {
	out := make([]string, 0, len(s.Suppressed))
	for r := range s.Suppressed {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// nagSuppressions accepts the deliberate findings (docs/deploy-checks.md says why for each).
func (s *Stack) nagSuppressions() {
	p := s.Props
	for _, f := range Functions {
		fn := s.Functions[f.Name]
		policies := []string{policyBasicExecution}
		if s.Network != nil {
			policies = append(policies, policyVPCAccess)
		}
		s.suppress(fn, "AwsSolutions-IAM4", reasonManagedPolicies, policies...)
		if s.tracing() == awslambda.Tracing_ACTIVE {
			s.suppress(fn, "AwsSolutions-IAM5", reasonXRay, "Resource::*")
		} else {
			s.suppress(fn, "Serverless-LambdaTracing", reasonNoTracing)
		}
		if f.Scheduled {
			s.suppress(fn, "Serverless-LambdaDLQ", "Invoked asynchronously by its schedule, and a failed run goes to the on-failure "+
				"destination (the schedule-failures queue), which records the error with the event: a dead-letter queue would be a second, poorer copy.")
		} else {
			s.suppress(fn, "Serverless-LambdaDLQ", reasonSyncDLQ)
		}
	}
	// The trigger invokes migrate synchronously: a failed migration fails the deploy. Its
	// zero async retries only guard against a manual asynchronous call.
	s.suppress(s.Functions["migrate"], "Serverless-LambdaAsyncFailureDestination",
		"Invoked synchronously by the deploy's trigger, whose failure fails the deploy; the invoke config (no retries) only guards a manual asynchronous call.")
	for _, name := range []string{"fulfill", "broadcast"} {
		s.suppress(s.Functions[name], "Serverless-LambdaEventSourceMappingDestination",
			"An SQS event source cannot have an on-failure destination; a message that fails 3 receives goes to the queue's dead-letter queue (redrive policy), with an alarm.")
	}
	if s.APIs != nil {
		s.suppress(s.Functions["broadcast"], "AwsSolutions-IAM5",
			"PostToConnection to the WebSocket stage's connections: their ids are made at connect time, so the grant names the stage's @connections/* (the CDK's grantManagementApiAccess).",
			`/^Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<WebSocketApi[0-9A-F]+>\/live\/\*\/@connections\/\*$/g`)
	}
	for _, q := range []constructs.IConstruct{s.Queues.FulfillDLQ, s.Queues.StockUpdatesDLQ} {
		s.suppress(q, "Serverless-SQSRedrivePolicy", "A dead-letter queue: the end of the line, watched by an alarm (a dead-letter queue of its own would hide messages further).")
	}
	s.suppress(s.Queues.ScheduleFailures, "Serverless-SQSRedrivePolicy", "The scheduled functions' failure destination: the end of the line like a dead-letter queue, watched by an alarm.")
	s.suppress(s.Queues.ScheduleFailures, "AwsSolutions-SQS3", "The scheduled functions' failure destination and their schedules' dead-letter queue, not a work queue: nothing consumes it, so it needs no dead-letter queue.")

	for _, secret := range []any{s.Data.Stripe, s.Data.StripeWebhook} {
		if c, ok := secret.(constructs.IConstruct); ok {
			if _, created := c.Node().DefaultChild().(awscdk.CfnResource); created { // not one given by its ARN
				s.suppress(c, "AwsSolutions-SMG4", "Stripe's keys are made in Stripe's dashboard, not by Secrets Manager: roll them there, then `make stripe-keys` "+
					"(the README's key rotation). A rotation function cannot create a Stripe key.")
			}
		}
	}

	if s.Data.Postgres != nil {
		s.suppress(s.Data.Postgres, "AwsSolutions-RDS11", "Postgres's default port: the instance is in isolated subnets and its security group admits the proxy and the rotation functions only; another port hides nothing from them.")
		if !p.Production {
			s.suppress(s.Data.Postgres, "AwsSolutions-RDS3", "Multi-AZ is on in production (context production=true); a development stack saves the standby's cost.")
			s.suppress(s.Data.Postgres, "AwsSolutions-RDS10", "Deletion protection is on in production (context production=true); a development stack must be deletable.")
		}
	}
	if s.Data.Redis != nil {
		s.suppress(s.Data.Redis, "AwsSolutions-AEC5", "Redis's default port: the group is in isolated subnets, admits the functions' security group only, and needs TLS and the AUTH token.")
	}
	if s.Data.RedisRotation != nil {
		s.suppress(s.Data.RedisRotation, "AwsSolutions-IAM4", reasonManagedPolicies, policyBasicExecution, policyVPCAccess)
		s.suppress(s.Data.RedisRotation, "AwsSolutions-IAM5", reasonXRay+" The same holds for secretsmanager:GetRandomPassword, which the CDK's rotation schedule grants.", "Resource::*")
		s.suppress(s.Data.RedisRotation, "Serverless-LambdaDLQ", reasonSyncDLQ)
		if s.tracing() != awslambda.Tracing_ACTIVE {
			s.suppress(s.Data.RedisRotation, "Serverless-LambdaTracing", reasonNoTracing)
		}
	}

	if s.APIs != nil {
		s.suppress(s.APIs.UserPool, "AwsSolutions-COG2", "Shoppers sign in with e-mail and password (a drop must not wait on a second factor); the admins' pool requires TOTP MFA.")
		s.suppress(s.APIs.UserPool, "AwsSolutions-COG8", "The Plus plan is priced per monthly active user, and a drop brings many shoppers for one sale; shoppers are held by "+
			"per-shopper rate limits and the WAF instead. The admins' pool is on Plus with threat protection enforced.")
		s.suppress(s.APIs.LogRole, "AwsSolutions-IAM4", "AWS's managed policy for API Gateway's account-wide CloudWatch role (the WebSocket stage's access logs): the documented way to grant it.", policyAPIGatewayLogs)
		s.suppress(s.APIs.WebSocket, "AwsSolutions-APIG4", "WebSocket routes: $connect checks an optional Cognito token itself (viewers may watch stock anonymously), "+
			"and the other routes ride that connection; an API Gateway authorizer would make every viewer sign in.")
		for i, r := range HTTPRoutes {
			if r.Access == Public {
				s.suppress(s.APIs.Routes[i], "AwsSolutions-APIG4", publicRouteReason(r.Key))
			}
		}
		s.suppress(s.APIs.Routes[len(HTTPRoutes)], "AwsSolutions-APIG4", publicRouteReason("$default"))
	}

	for _, c := range *s.AlarmTopic.Node().Children() {
		if _, ok := c.(awssns.Subscription); ok {
			s.suppress(c, "Serverless-SNSRedrivePolicy", "The alarm e-mail (context alarmEmail): an alarm whose mail bounced is still in "+
				"CloudWatch, in its state and history; a dead-letter queue for bounced alarm mail would need an alarm of its own.")
		}
	}
	if s.Site != nil {
		s.suppress(s.Site.Logs, "AwsSolutions-S1", "The access-log bucket itself: its own access logs would be written into itself, without end.")
		s.suppress(s.Site.Distribution, "AwsSolutions-CFR1", "A sale is open to every country; the operator adds geo restrictions where law requires them.")
		if !p.WAF {
			s.suppress(s.Site.Distribution, "AwsSolutions-CFR2", "The WAF is context waf=true (a CloudFront web ACL lives in us-east-1 only); without it the stages' throttles and "+
				"the per-shopper rate limit in Redis stand.")
		}
		if p.SiteDomain == "" {
			s.suppress(s.Site.Distribution, "AwsSolutions-CFR4", "Without a domain of one's own the distribution serves CloudFront's default *.cloudfront.net certificate, "+
				"whose minimum protocol CloudFront fixes at TLSv1; context siteDomain and siteCertificateArn give TLSv1.2_2021.")
		}
		for _, c := range *s.Stack.Node().Children() {
			if strings.HasPrefix(*c.Node().Id(), "Custom::CDKBucketDeployment") {
				s.suppressUploadFunction(c)
			}
		}
	}
}

// publicRouteReason is why a public HTTP route has no authorizer.
func publicRouteReason(key string) string {
	switch key {
	case "POST /webhooks/stripe":
		return "Stripe's webhook: Stripe sends no Cognito token; the function verifies the Stripe-Signature of every event (the signing secret only it reads)."
	case "$default":
		return "The catch-all route answers API.md's 404 for unknown paths; it serves nothing else."
	default:
		return key + " is public by API.md: the catalogue, read from Redis, rate limited by the stage throttles (and the WAF)."
	}
}

// suppressUploadFunction accepts the findings on the CDK's own BucketDeployment function
// (the pages' upload, a custom resource that runs at deploy time): its runtime, role and
// policy are the CDK's.
func (s *Stack) suppressUploadFunction(c constructs.IConstruct) {
	const why = "The CDK's own BucketDeployment function (uploads web/ at deploy time, as a CloudFormation custom resource): "
	s.suppress(c, "AwsSolutions-IAM4", why+"its role uses the managed basic execution policy.", policyBasicExecution)
	s.suppress(c, "AwsSolutions-IAM5", why+"the CDK grants it the object actions on the site's bucket and the CDK asset bucket "+
		"(TestSite holds it to those two buckets), and CloudFront's invalidation, which it can only grant on every distribution.",
		"Resource::*", "Action::s3:Abort*", "Action::s3:DeleteObject*", "Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*",
		`/^Resource::<WebBucket[0-9A-F]+\.Arn>\/\*$/g`, `/^Resource::arn:<AWS::Partition>:s3:::cdk-[a-z0-9]+-assets-<AWS::AccountId>-<AWS::Region>\/\*$/g`)
	s.suppress(c, "AwsSolutions-L1", why+"the CDK picks its runtime and moves it forward with CDK releases.")
	s.suppress(c, "Serverless-LambdaLatestVersion", why+"the CDK picks its runtime and moves it forward with CDK releases.")
	s.suppress(c, "Serverless-LambdaTracing", why+"it runs once per deploy, outside any request; its logs go to WebDeploymentLogs.")
	s.suppress(c, "Serverless-LambdaDLQ", why+"CloudFormation invokes it and waits for its answer; a failure fails the deploy.")
}
