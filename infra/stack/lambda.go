package stack

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"
)

// retentions are the log retentions Props.LogRetentionDays may name.
var retentions = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 7: awslogs.RetentionDays_ONE_WEEK,
	14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH, 90: awslogs.RetentionDays_THREE_MONTHS,
	180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
}

// retention is the log retention of days (Props.LogRetentionDays), or a panic naming the choices.
func retention(days int) awslogs.RetentionDays {
	r, ok := retentions[days]
	if !ok {
		panic(fmt.Sprintf("LogRetentionDays %d: use one of 1, 3, 7, 14, 30, 90, 180, 365", days))
	}
	return r
}

// logicalName is a function's construct id prefix: "reserve" → "Reserve".
func logicalName(fn string) string { return strings.ToUpper(fn[:1]) + fn[1:] }

// newFunction deploys functions/<f.Name>: arm64 provided.al2023, in the VPC, X-Ray active
// tracing (unless context tracing=false), JSON logs into its own log group with a retention,
// and exactly the grants f asks for.
func (s *Stack) newFunction(f Function) awslambda.Function {
	id := logicalName(f.Name)
	logs := awslogs.NewLogGroup(s.Stack, jsii.String(id+"Logs"), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String("/aws/lambda/" + s.Props.Prefix + "-" + f.Name),
		Retention:     retention(s.Props.LogRetentionDays),
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	arch := awslambda.Architecture_ARM_64()
	if s.Props.Architecture == "x86_64" {
		arch = awslambda.Architecture_X86_64()
	}
	env := s.environment(f)
	props := &awslambda.FunctionProps{
		FunctionName:          name(s.Props.Prefix, f.Name),
		Description:           jsii.String("lastunit " + f.Name + ": " + f.Description),
		Runtime:               awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:          arch,
		Handler:               jsii.String("bootstrap"),
		Code:                  s.Props.Code(f.Name),
		MemorySize:            jsii.Number(float64(f.MemoryMB)),
		Timeout:               seconds(f.TimeoutSeconds),
		Environment:           &env,
		Tracing:               s.tracing(),
		LoggingFormat:         awslambda.LoggingFormat_JSON,
		ApplicationLogLevelV2: awslambda.ApplicationLogLevel_INFO,
		SystemLogLevelV2:      awslambda.SystemLogLevel_WARN,
		LogGroup:              logs,
	}
	if s.Network != nil {
		props.Vpc, props.VpcSubnets = s.Network.Vpc, privateSubnets()
		props.SecurityGroups = &[]awsec2.ISecurityGroup{}
		if !f.Owner { // the migrate function needs no Redis
			*props.SecurityGroups = append(*props.SecurityGroups, s.Network.Functions)
		}
		if f.Postgres {
			*props.SecurityGroups = append(*props.SecurityGroups, s.Network.PostgresClients)
		}
	}
	if f.AsyncRetries >= 0 {
		props.RetryAttempts = jsii.Number(float64(f.AsyncRetries))
	}
	if f.Scheduled {
		props.OnFailure = awslambdadestinations.NewSqsDestination(s.Queues.ScheduleFailures)
	}
	if n := s.Data.Budget.Concurrency[f.Name]; n > 0 {
		props.ReservedConcurrentExecutions = jsii.Number(float64(n))
	}
	fn := awslambda.NewFunction(s.Stack, jsii.String(id+"Function"), props)

	allow := func(resource *string, actions ...string) {
		fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions: jsii.Strings(actions...), Resources: &[]*string{resource},
		}))
	}
	switch {
	case f.Owner:
		allow(s.Data.DBSecret.SecretArn(), "secretsmanager:GetSecretValue")
		allow(s.Data.AppSecret.SecretArn(), "secretsmanager:GetSecretValue")
	case f.Postgres:
		allow(s.Data.AppSecret.SecretArn(), "secretsmanager:GetSecretValue")
	}
	if s.Data.RedisAuth != nil && !f.Owner {
		allow(s.Data.RedisAuth.SecretArn(), "secretsmanager:GetSecretValue")
	}
	if f.Stripe {
		allow(s.Data.Stripe.SecretArn(), "secretsmanager:GetSecretValue")
	}
	if f.StripeWebhook {
		allow(s.Data.StripeWebhook.SecretArn(), "secretsmanager:GetSecretValue")
	}
	if f.SendFulfill {
		allow(s.Queues.Fulfill.QueueArn(), "sqs:SendMessage")
	}
	if f.ConsumeFulfillDLQ {
		allow(s.Queues.FulfillDLQ.QueueArn(), "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")
	}
	if f.SendStockUpdates {
		allow(s.Queues.StockUpdates.QueueArn(), "sqs:SendMessage")
	}
	if f.ManageConnections && s.APIs != nil {
		s.APIs.WebSocketStage.GrantManagementApiAccess(fn)
	}

	// Queue consumers: only the failed messages of a batch come back (and dead-letter after 3).
	switch f.Name {
	case "fulfill":
		fn.AddEventSource(awslambdaeventsources.NewSqsEventSource(s.Queues.Fulfill, &awslambdaeventsources.SqsEventSourceProps{
			BatchSize: jsii.Number(10), ReportBatchItemFailures: jsii.Bool(true),
			MaxConcurrency: jsii.Number(5), // fulfillment is not urgent; spare Postgres connections
		}))
	case "broadcast":
		fn.AddEventSource(awslambdaeventsources.NewSqsEventSource(s.Queues.StockUpdates, &awslambdaeventsources.SqsEventSourceProps{
			BatchSize: jsii.Number(10), ReportBatchItemFailures: jsii.Bool(true),
		}))
	}
	return fn
}
