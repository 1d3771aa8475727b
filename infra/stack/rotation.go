package stack

import (
	_ "embed" // the Redis rotation function's code

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
)

// RedisRotationCode is the Redis AUTH token's rotation function (Node.js, inline: the AWS SDK
// for JavaScript comes with the runtime, so it needs no package). Secrets Manager calls it in
// four steps:
//
//   - createSecret: a new random token (48 letters and digits) as the AWSPENDING version;
//   - setSecret: ElastiCache's two-token rotation. ModifyReplicationGroup with ROTATE makes
//     the group accept the new token beside the current one, so warm functions (which read
//     the token at their cold start) keep working while new ones start with the new token.
//     When an earlier rotation left a previous token, a SET to the current token first drops
//     it (no function has read it since that rotation finished, RotationDays ago);
//   - testSecret: AUTH with the new token and with the current one, over TLS, both accepted;
//   - finishSecret: the new version becomes AWSCURRENT.
//
// It waits for the group to be available around each change (Lambda's timeout bounds it).
//
//go:embed rotation/redis.js
var RedisRotationCode string

// redisRotationTimeoutSeconds is the rotation function's timeout: an AUTH token change
// takes the replication group through "modifying" for minutes.
const redisRotationTimeoutSeconds = 900

// newRedisRotation schedules the rotation of the Redis AUTH token every RotationDays, by a
// function in the functions' subnets and security group (Redis accepts it), allowed to
// change this replication group's token and nothing else.
func (s *Stack) newRedisRotation() {
	d, n := s.Data, s.Network
	logs := awslogs.NewLogGroup(s.Stack, jsii.String("RotateRedisLogs"), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String("/aws/lambda/" + s.Props.Prefix + "-rotate-redis"),
		Retention:     retention(s.Props.LogRetentionDays),
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	fn := awslambda.NewFunction(s.Stack, jsii.String("RotateRedisFunction"), &awslambda.FunctionProps{
		FunctionName: name(s.Props.Prefix, "rotate-redis"),
		Description:  jsii.String("lastunit: rotates the Redis AUTH token (Secrets Manager rotation)"),
		Runtime:      awslambda.Runtime_NODEJS_24_X(),
		Handler:      jsii.String("index.handler"),
		Code:         awslambda.Code_FromInline(jsii.String(RedisRotationCode)),
		MemorySize:   jsii.Number(256),
		Timeout:      seconds(redisRotationTimeoutSeconds),
		Tracing:      s.tracing(),
		LogGroup:     logs,
		Vpc:          n.Vpc, VpcSubnets: privateSubnets(),
		SecurityGroups: &[]awsec2.ISecurityGroup{n.Functions},
		Environment: &map[string]*string{
			"REPLICATION_GROUP_ID": d.Redis.Ref(),
			"REDIS_HOST":           d.Redis.AttrPrimaryEndPointAddress(),
			"REDIS_PORT":           d.Redis.AttrPrimaryEndPointPort(),
		},
	})
	group := s.Stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("elasticache"), Resource: jsii.String("replicationgroup"), ResourceName: d.Redis.Ref(),
		ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
	})
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("elasticache:DescribeReplicationGroups", "elasticache:ModifyReplicationGroup"),
		Resources: &[]*string{group},
	}))
	// The secret's read, write and stage permissions and GetRandomPassword come with the schedule.
	d.RedisAuth.AddRotationSchedule(jsii.String("Rotation"), &awssecretsmanager.RotationScheduleOptions{
		RotationLambda:     fn,
		AutomaticallyAfter: awscdk.Duration_Days(jsii.Number(RotationDays)),
		// The first rotation comes RotationDays after the deploy, not while it runs.
		RotateImmediatelyOnUpdate: jsii.Bool(false),
	})
	d.RedisRotation = fn
}
