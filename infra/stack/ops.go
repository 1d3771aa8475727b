package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"
)

// Schedules of the EventBridge rules.
const (
	ExpireSchedule  = "rate(1 minute)"
	JanitorSchedule = "cron(17 3 * * ? *)" // daily at 03:17 UTC
)

// newSchedules invokes expire every minute (no retry: the next sweep repairs what one did not
// finish, and retries would overlap it) and janitor daily (two retries; it takes a lock). An
// event EventBridge cannot deliver goes to the schedule-failures queue, as does a run that
// failed (the functions' on-failure destination).
func (s *Stack) newSchedules() {
	awsevents.NewRule(s.Stack, jsii.String("ExpireSchedule"), &awsevents.RuleProps{
		Description: jsii.String("lastunit expiry sweep"),
		Schedule:    awsevents.Schedule_Expression(jsii.String(ExpireSchedule)),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(s.Functions["expire"], &awseventstargets.LambdaFunctionProps{
			RetryAttempts: jsii.Number(0), MaxEventAge: awscdk.Duration_Seconds(jsii.Number(60)),
			DeadLetterQueue: s.Queues.ScheduleFailures,
		})},
	})
	awsevents.NewRule(s.Stack, jsii.String("JanitorSchedule"), &awsevents.RuleProps{
		Description: jsii.String("lastunit daily janitor: failed jobs older than FAILED_JOB_MAX_AGE"),
		Schedule:    awsevents.Schedule_Expression(jsii.String(JanitorSchedule)),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(s.Functions["janitor"], &awseventstargets.LambdaFunctionProps{
			RetryAttempts: jsii.Number(2), DeadLetterQueue: s.Queues.ScheduleFailures,
		})},
	})
}

// newAlarms raises an alarm (to an SNS topic) when a dead-letter queue holds anything, when
// any function errs or is throttled, and on the business signals (BusinessAlarms, observe.go).
func (s *Stack) newAlarms() {
	topic := awssns.NewTopic(s.Stack, jsii.String("Alarms"), &awssns.TopicProps{
		TopicName: name(s.Props.Prefix, "alarms"), EnforceSSL: jsii.Bool(true),
	})
	s.AlarmTopic = topic
	if s.Props.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.Props.AlarmEmail), nil))
	}
	action := awscloudwatchactions.NewSnsAction(topic)
	s.Alarms = map[string]awscloudwatch.Alarm{}
	alarm := func(id, desc string, metric awscloudwatch.IMetric) awscloudwatch.Alarm {
		a := awscloudwatch.NewAlarm(s.Stack, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(desc),
			Metric:             metric,
			Threshold:          jsii.Number(0),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(1),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		a.AddAlarmAction(action)
		a.AddOkAction(action)
		s.Alarms[id] = a
		s.AlarmIDs = append(s.AlarmIDs, id)
		return a
	}
	s.newBusinessAlarms(alarm)
	for _, q := range []struct {
		id   string
		dlq  awssqs.Queue
		desc string
	}{
		{"FulfillOrderDLQ", s.Queues.FulfillDLQ, "a message was dead-lettered: see GET /admin/failed-jobs"},
		{"StockUpdatesDLQ", s.Queues.StockUpdatesDLQ, "a message was dead-lettered: see the broadcaster's logs"},
		{"ScheduleFailures", s.Queues.ScheduleFailures, "a scheduled run (expire, janitor) failed or was not delivered: the message holds the error"},
	} {
		alarm(q.id+"NotEmpty", q.desc,
			q.dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
				Period: awscdk.Duration_Minutes(jsii.Number(1)), Statistic: jsii.String("Maximum"),
			}))
	}
	for _, f := range Functions {
		fn := s.Functions[f.Name]
		opts := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}
		alarm(logicalName(f.Name)+"Errors", "lastunit "+f.Name+" returned errors", fn.MetricErrors(opts))
		alarm(logicalName(f.Name)+"Throttles", "lastunit "+f.Name+" was throttled", fn.MetricThrottles(opts))
	}
}

// newOutputs exports what a client or an operator needs.
func (s *Stack) newOutputs() {
	out := func(id, desc string, value *string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Value: value, Description: jsii.String(desc)})
	}
	if s.APIs != nil {
		out("HttpApiUrl", "HTTP API base URL (API.md routes)", s.APIs.HTTPStage.Url())
		out("WebSocketUrl", "WebSocket URL for live stock", s.APIs.WebSocketStage.Url())
		out("WebSocketCallbackUrl", "WebSocket management API endpoint", s.APIs.WebSocketStage.CallbackUrl())
		out("UserPoolId", "Cognito user pool", s.APIs.UserPool.UserPoolId())
		out("UserPoolClientId", "Cognito web client (the JWT audience)", s.APIs.UserPoolClient.UserPoolClientId())
	}
	if s.Site != nil {
		out("SiteUrl", "the storefront (/) and the admin dashboard (/dashboard) on CloudFront", s.siteOrigin())
	}
	out("StripeSecretArn", `put the Stripe API key {"secret_key"} here (make stripe-keys)`, s.Data.Stripe.SecretArn())
	out("StripeWebhookSecretArn", `put the webhook signing secret {"webhook_secret"} here (make stripe-keys)`, s.Data.StripeWebhook.SecretArn())
	out("FulfillQueueUrl", "fulfill-order queue", s.Queues.Fulfill.QueueUrl())
	out("FulfillDLQUrl", "fulfill-order dead-letter queue", s.Queues.FulfillDLQ.QueueUrl())
	out("AlarmTopicArn", "SNS topic of the alarms", s.AlarmTopic.TopicArn())
}
