package stack

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// The fixes of docs/deploy-checks.md, each asserted on the template itself (TestNag only says
// that cdk-nag is content).

// supportRoles are the roles that are neither a function's nor the CDK's: the Redis
// rotation's, the VPC flow log's and API Gateway's account logging role.
func supportRoles(t *testing.T, d cfnTemplate) map[string]string {
	t.Helper()
	out := map[string]string{}
	out["rotation"] = refs(d.Resources[d.functionID(t, "rotate-redis")].Properties["Role"])[0]
	_, flow := d.one(t, "AWS::EC2::FlowLog")
	out["flow-log"] = refs(flow.Properties["DeliverLogsPermissionArn"])[0]
	_, account := d.one(t, "AWS::ApiGateway::Account")
	out["apigateway"] = refs(account.Properties["CloudWatchRoleArn"])[0]
	return out
}

// TestSupportRoles: each role beside the functions' may do exactly its job.
func TestSupportRoles(t *testing.T) {
	s, _, d := synth(t)
	roles := supportRoles(t, d)
	tests := []struct {
		role string
		want []string
		// managed is the AWS managed policies the role may have.
		managed []string
	}{
		{"rotation", []string{
			"xray:PutTraceSegments@*", "xray:PutTelemetryRecords@*", "secretsmanager:GetRandomPassword@*",
			"elasticache:DescribeReplicationGroups@redis", "elasticache:ModifyReplicationGroup@redis",
			"secretsmanager:DescribeSecret@redis-auth", "secretsmanager:GetSecretValue@redis-auth",
			"secretsmanager:PutSecretValue@redis-auth", "secretsmanager:UpdateSecretVersionStage@redis-auth",
		}, []string{"AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole"}},
		{"flow-log", []string{
			"logs:CreateLogStream@flow-logs", "logs:PutLogEvents@flow-logs", "logs:DescribeLogStreams@flow-logs",
		}, nil},
		{"apigateway", nil, []string{"AmazonAPIGatewayPushToCloudWatchLogs"}},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			role := roles[tt.role]
			got := roleGrants(s, d, role)
			want := map[string]bool{}
			for _, g := range tt.want {
				want[g] = true
			}
			if !reflect.DeepEqual(sorted(got), sorted(want)) {
				t.Errorf("grants\n got  %v\n want %v", sorted(got), sorted(want))
			}
			var managed []string
			for _, m := range asList(d.Resources[role].Properties["ManagedPolicyArns"]) {
				text := flatten(m)
				managed = append(managed, text[strings.LastIndex(text, "/")+1:])
			}
			if strings.Join(managed, " ") != strings.Join(tt.managed, " ") {
				t.Errorf("managed policies %v, want %v", managed, tt.managed)
			}
		})
	}
}

// TestSecretRotation: both Postgres secrets rotate by Secrets Manager's hosted single-user
// rotation in the functions' subnets, the Redis AUTH token by its own function, all every
// RotationDays; the application role's secret names the instance (the rotation logs in there).
func TestSecretRotation(t *testing.T) {
	s, tp, d := synth(t)
	days := map[string]any{"ScheduleExpression": fmt.Sprintf("rate(%d days)", RotationDays)}
	has(t, "no rotation during a deploy", func() {
		tp.ResourcePropertiesCountIs(jsii.String("AWS::SecretsManager::RotationSchedule"),
			props(map[string]any{"RotateImmediatelyOnUpdate": false}), jsii.Number(3))
	})
	for _, secret := range []string{logicalID(s, s.Data.DBSecret), logicalID(s, s.Data.AppSecret)} {
		has(t, secret+" hosted rotation", func() {
			tp.HasResourceProperties(jsii.String("AWS::SecretsManager::RotationSchedule"), props(map[string]any{
				"SecretId": map[string]any{"Ref": secret},
				"HostedRotationLambda": assertions.Match_ObjectLike(props(map[string]any{
					"RotationType":        "PostgreSQLSingleUser",
					"VpcSecurityGroupIds": map[string]any{"Fn::GetAtt": []any{logicalID(s, s.Network.Rotation), "GroupId"}},
				})),
				"RotationRules": days,
			}))
		})
	}
	has(t, "redis rotation", func() {
		tp.HasResourceProperties(jsii.String("AWS::SecretsManager::RotationSchedule"), props(map[string]any{
			"SecretId":          map[string]any{"Ref": logicalID(s, s.Data.RedisAuth)},
			"RotationLambdaARN": map[string]any{"Fn::GetAtt": []any{logicalID(s, s.Data.RedisRotation), "Arn"}},
			"RotationRules":     days,
		}))
	})
	has(t, "three schedules", func() {
		tp.ResourceCountIs(jsii.String("AWS::SecretsManager::RotationSchedule"), jsii.Number(3))
	})
	has(t, "both secrets name the instance (the master's and the application role's)", func() {
		tp.ResourcePropertiesCountIs(jsii.String("AWS::SecretsManager::SecretTargetAttachment"), props(map[string]any{
			"TargetId": map[string]any{"Ref": logicalID(s, s.Data.Postgres)}, "TargetType": "AWS::RDS::DBInstance",
		}), jsii.Number(2))
	})
	fn := d.Resources[d.functionID(t, "rotate-redis")]
	env := fn.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
	redis := *s.Stack.GetLogicalId(s.Data.Redis)
	for k, want := range map[string]string{"REPLICATION_GROUP_ID": redis, "REDIS_HOST": redis, "REDIS_PORT": redis} {
		if r := refs(env[k]); len(r) != 1 || r[0] != want {
			t.Errorf("%s = %v, want the replication group's", k, env[k])
		}
	}
	if len(env) != 3 {
		t.Errorf("environment %v", env)
	}
	// Redis admits the functions' group only: the rotation runs in it, in the functions' subnets.
	sgs := flatten(fn.Properties["VpcConfig"])
	if !strings.Contains(sgs, logicalID(s, s.Network.Functions)) || !strings.Contains(sgs, "functions") {
		t.Errorf("rotation function network %s", sgs)
	}
	// CloudFormation takes inline code of up to 4 KB.
	if n := len(RedisRotationCode); n > 4096 {
		t.Errorf("the rotation code is %d bytes, over CloudFormation's 4096 for inline code", n)
	}
	if fn.Properties["Timeout"] != float64(redisRotationTimeoutSeconds) || fn.Properties["Runtime"] != "nodejs24.x" {
		t.Errorf("timeout %v runtime %v", fn.Properties["Timeout"], fn.Properties["Runtime"])
	}
}

// TestAccessLogs: VPC flow logs of all traffic, the WebSocket stage's access logs (through the
// account's API Gateway role, set before the stage), the site bucket's server access logs and
// the distribution's standard logs in the log bucket, which expires them.
func TestAccessLogs(t *testing.T) {
	s, tp, d := synth(t)
	has(t, "flow log", func() {
		tp.HasResourceProperties(jsii.String("AWS::EC2::FlowLog"), props(map[string]any{
			"ResourceId": map[string]any{"Ref": logicalID(s, s.Network.Vpc)}, "ResourceType": "VPC", "TrafficType": "ALL",
			"LogGroupName": map[string]any{"Ref": logicalID(s, s.Network.FlowLogs)},
		}))
	})
	has(t, "flow log retention", func() {
		tp.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), props(map[string]any{
			"LogGroupName": "/lastunit/lastunit/vpc-flow-logs", "RetentionInDays": 30,
		}))
	})
	stageID := logicalID(s, s.APIs.WebSocketStage)
	stage := d.Resources[stageID]
	logs := stage.Properties["AccessLogSettings"].(map[string]any)
	if r := refs(logs["DestinationArn"]); len(r) != 1 || r[0] != logicalID(s, s.APIs.WebSocketLogs) {
		t.Errorf("WebSocket access logs go to %v", logs["DestinationArn"])
	}
	for _, field := range []string{"$context.requestId", "$context.routeKey", "$context.connectionId", "$context.status"} {
		if !strings.Contains(fmt.Sprint(logs["Format"]), field) {
			t.Errorf("WebSocket access log format lacks %s", field)
		}
	}
	account, _ := d.one(t, "AWS::ApiGateway::Account")
	if !d.reaches(stageID, account) {
		t.Errorf("the WebSocket stage does not wait for the account's API Gateway logging role")
	}
	if role := supportRoles(t, d)["apigateway"]; d.Resources[role].DeletionPolicy != "Retain" {
		t.Errorf("the account's API Gateway role %s would be deleted with the stack (the account setting outlives it)", role)
	}
	logBucket := logicalID(s, s.Site.Logs)
	has(t, "site bucket access logs", func() {
		tp.HasResourceProperties(jsii.String("AWS::S3::Bucket"), props(map[string]any{
			"LoggingConfiguration": map[string]any{"DestinationBucketName": map[string]any{"Ref": logBucket}, "LogFilePrefix": "s3/"},
		}))
	})
	has(t, "log bucket", func() {
		tp.HasResourceProperties(jsii.String("AWS::S3::Bucket"), props(map[string]any{
			"OwnershipControls": map[string]any{"Rules": []any{map[string]any{"ObjectOwnership": "BucketOwnerPreferred"}}},
			"PublicAccessBlockConfiguration": map[string]any{
				"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
			},
			"LifecycleConfiguration": map[string]any{"Rules": []any{assertions.Match_ObjectLike(props(map[string]any{"ExpirationInDays": 30, "Status": "Enabled"}))}},
		}))
	})
	_, dist := d.one(t, "AWS::CloudFront::Distribution")
	logging := dist.Properties["DistributionConfig"].(map[string]any)["Logging"].(map[string]any)
	if r := refs(logging["Bucket"]); len(r) != 1 || r[0] != logBucket || logging["Prefix"] != "cloudfront/" {
		t.Errorf("distribution logging %v", logging)
	}
}

// TestViewerTLS: with a domain of one's own the distribution takes its certificate and
// refuses anything older than TLS 1.2; without one it keeps CloudFront's certificate; the
// domain and certificate come together.
func TestViewerTLS(t *testing.T) {
	_, _, d := synth(t)
	_, dist := d.one(t, "AWS::CloudFront::Distribution")
	if vc, ok := dist.Properties["DistributionConfig"].(map[string]any)["ViewerCertificate"]; ok {
		t.Errorf("default stack: viewer certificate %v, want CloudFront's", vc)
	}
	cert := "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
	_, _, dd, err := newTestStack(t, Props{WebDir: "../../web", SiteDomain: "shop.example.com", SiteCertificateArn: cert})
	if err != nil {
		t.Fatal(err)
	}
	_, dist = dd.one(t, "AWS::CloudFront::Distribution")
	cfg := dist.Properties["DistributionConfig"].(map[string]any)
	want := map[string]any{"AcmCertificateArn": cert, "MinimumProtocolVersion": "TLSv1.2_2021", "SslSupportMethod": "sni-only"}
	if !reflect.DeepEqual(cfg["ViewerCertificate"], want) || !reflect.DeepEqual(cfg["Aliases"], []any{"shop.example.com"}) {
		t.Errorf("own domain: aliases %v, viewer certificate %v, want %v", cfg["Aliases"], cfg["ViewerCertificate"], want)
	}
	// The sign-in pages return to the domain, not to the distribution's name.
	for id, c := range dd.ofType("AWS::Cognito::UserPoolClient") {
		if got := flatten(c.Properties["CallbackURLs"]); !strings.Contains(got, "https://shop.example.com/") {
			t.Errorf("%s callback %s", id, got)
		}
	}
	if _, _, _, err := newTestStack(t, Props{WebDir: "../../web", SiteDomain: "shop.example.com"}); err == nil {
		t.Error("a domain without a certificate was accepted")
	}
}

// TestScheduleFailures: a failed expire or janitor run (after its retries) and an event
// EventBridge could not deliver both land in the schedule-failures queue.
func TestScheduleFailures(t *testing.T) {
	s, tp, _ := synth(t)
	queue := map[string]any{"Fn::GetAtt": []any{logicalID(s, s.Queues.ScheduleFailures), "Arn"}}
	for _, f := range Functions {
		if !f.Scheduled {
			continue
		}
		has(t, f.Name+" on-failure destination", func() {
			tp.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), props(map[string]any{
				"FunctionName":      map[string]any{"Ref": logicalID(s, s.Functions[f.Name])},
				"DestinationConfig": map[string]any{"OnFailure": map[string]any{"Destination": queue}},
			}))
		})
		has(t, f.Name+" schedule dead-letter queue", func() {
			tp.HasResourceProperties(jsii.String("AWS::Events::Rule"), props(map[string]any{
				"Targets": []any{assertions.Match_ObjectLike(props(map[string]any{
					"Arn":              map[string]any{"Fn::GetAtt": []any{logicalID(s, s.Functions[f.Name]), "Arn"}},
					"DeadLetterConfig": map[string]any{"Arn": queue},
				}))},
			}))
		})
	}
}
