package stack

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awselasticache"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsrds"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
)

// Network is the VPC and the security groups between the functions and the data stores.
type Network struct {
	Vpc awsec2.Vpc
	// Functions is the security group of every function that uses Redis: out to anywhere
	// (Stripe, AWS APIs), nothing in.
	Functions awsec2.SecurityGroup
	// PostgresClients is the security group of the functions that use Postgres (Function.Postgres):
	// out to anywhere, nothing in; the proxy accepts 5432 from it only. wsconnect and broadcast
	// are not in it, so they have no network path to the database.
	PostgresClients awsec2.SecurityGroup
	// Proxy is the RDS Proxy's: 5432 in from PostgresClients, out to Postgres's 5432 only.
	Proxy awsec2.SecurityGroup
	// Postgres accepts 5432 from the proxy and from Rotation only; Redis accepts 6379 from
	// Functions only.
	Postgres, Redis awsec2.SecurityGroup
	// Rotation is the group of Secrets Manager's hosted rotation functions of the two
	// Postgres secrets: out to anywhere (the Secrets Manager API), nothing in.
	Rotation awsec2.SecurityGroup
	// FlowLogs receives the VPC's flow logs (every accepted and rejected flow).
	FlowLogs awslogs.LogGroup
}

// newNetwork builds a two-AZ VPC: public subnets for one NAT gateway, private subnets with
// egress for the functions, isolated subnets for Postgres and Redis, and flow logs of all
// traffic into a log group kept as long as the functions' logs.
func newNetwork(s awscdk.Stack, p Props) *Network {
	vpc := awsec2.NewVpc(s, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(2),
		NatGateways: jsii.Number(1), // one NAT gateway: cost over AZ independence of egress (README)
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24)},
			{Name: jsii.String("functions"), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS, CidrMask: jsii.Number(20)},
			{Name: jsii.String("data"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED, CidrMask: jsii.Number(24)},
		},
		RestrictDefaultSecurityGroup: jsii.Bool(false), // nothing uses it; avoids a custom-resource function
	})
	sg := func(id, desc string, out bool) awsec2.SecurityGroup {
		return awsec2.NewSecurityGroup(s, jsii.String(id), &awsec2.SecurityGroupProps{
			Vpc: vpc, Description: jsii.String(desc), AllowAllOutbound: jsii.Bool(out),
		})
	}
	n := &Network{
		Vpc:             vpc,
		Functions:       sg("FunctionsSG", "lastunit functions", true),
		PostgresClients: sg("PostgresClientsSG", "lastunit functions that use Postgres (through the proxy)", true),
		Proxy:           sg("PostgresProxySG", "lastunit RDS Proxy: 5432 from the Postgres clients, to Postgres", false),
		Postgres:        sg("PostgresSG", "lastunit Postgres: 5432 from the proxy", false),
		Redis:           sg("RedisSG", "lastunit Redis: 6379 from the functions", false),
		Rotation:        sg("SecretRotationSG", "lastunit rotation of the Postgres secrets", true),
	}
	n.FlowLogs = awslogs.NewLogGroup(s, jsii.String("VpcFlowLogs"), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String("/lastunit/" + p.Prefix + "/vpc-flow-logs"),
		Retention:     retention(p.LogRetentionDays),
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	vpc.AddFlowLog(jsii.String("FlowLog"), &awsec2.FlowLogOptions{
		Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(n.FlowLogs, nil),
		TrafficType: awsec2.FlowLogTrafficType_ALL,
	})
	// The proxy to Postgres (ingress on Postgres, egress on the proxy) is added by the
	// DatabaseProxy construct itself.
	n.Proxy.AddIngressRule(n.PostgresClients, awsec2.Port_Tcp(jsii.Number(5432)), jsii.String("functions to the proxy"), nil)
	n.Redis.AddIngressRule(n.Functions, awsec2.Port_Tcp(jsii.Number(6379)), jsii.String("functions to Redis"), nil)
	return n
}

// RotationDays is how often the Postgres and Redis secrets rotate.
const RotationDays = 30

// AppRoleName is the Postgres login role the functions connect as (store.EnsureAppRole).
const AppRoleName = "lastunit_app"

// Data is Postgres, the proxy, Redis and the secrets the functions read at cold start.
type Data struct {
	Postgres awsrds.DatabaseInstance
	// DBSecret is the generated master credentials: {username, password, host, port, dbname, ...};
	// the migrate function (and the proxy) only.
	DBSecret awssecretsmanager.ISecret
	// AppSecret is the application role's generated credentials {username, password} (plus
	// host, port and dbname in LocalStack); every other function that uses Postgres reads it.
	AppSecret awssecretsmanager.ISecret
	// Proxy is the RDS Proxy in front of Postgres (nil in LocalStack); DatabaseHost is its
	// endpoint, the functions' DATABASE_HOST.
	Proxy        awsrds.DatabaseProxy
	DatabaseHost *string
	// Budget is the connection budget the proxy and the reserved concurrency follow.
	Budget Budget
	Redis  awselasticache.CfnReplicationGroup
	// RedisURL is rediss://primary-endpoint:port/0 (TLS); the AUTH token comes from RedisAuth.
	RedisURL *string
	// RedisAuth is the Redis AUTH token (a plain secret string), rotated every RotationDays
	// by RedisRotation (rotation.go).
	RedisAuth     awssecretsmanager.Secret
	RedisRotation awslambda.Function
	// Stripe holds the API key {"secret_key"} (every function that calls Stripe);
	// StripeWebhook the webhook endpoint's signing secret {"webhook_secret"} (the webhook
	// function only).
	Stripe, StripeWebhook awssecretsmanager.ISecret
}

// newData builds RDS PostgreSQL with generated credentials in Secrets Manager, ElastiCache
// Redis (cluster mode disabled, a primary and a replica in two AZs, automatic failover, TLS,
// AUTH token) and the Stripe secret.
func newData(s awscdk.Stack, n *Network, p Props) *Data {
	d := &Data{}
	removal := awscdk.RemovalPolicy_DESTROY
	if p.Production {
		removal = awscdk.RemovalPolicy_SNAPSHOT
	}
	isolated := &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED}
	d.Postgres = awsrds.NewDatabaseInstance(s, jsii.String("Postgres"), &awsrds.DatabaseInstanceProps{
		Engine: awsrds.DatabaseInstanceEngine_Postgres(&awsrds.PostgresInstanceEngineProps{
			Version: awsrds.PostgresEngineVersion_VER_16(),
		}),
		InstanceType:        awsec2.NewInstanceType(jsii.String(p.DBInstanceClass)),
		Vpc:                 n.Vpc,
		VpcSubnets:          isolated,
		SecurityGroups:      &[]awsec2.ISecurityGroup{n.Postgres},
		Credentials:         awsrds.Credentials_FromGeneratedSecret(jsii.String("lastunit"), &awsrds.CredentialsBaseOptions{SecretName: jsii.String(p.Prefix + "/postgres")}),
		DatabaseName:        jsii.String("lastunit"),
		AllocatedStorage:    jsii.Number(20),
		MaxAllocatedStorage: jsii.Number(100),
		StorageEncrypted:    jsii.Bool(true),
		StorageType:         awsrds.StorageType_GP3,
		MultiAz:             jsii.Bool(p.Production),
		DeletionProtection:  jsii.Bool(p.Production),
		BackupRetention:     awscdk.Duration_Days(jsii.Number(7)),
		RemovalPolicy:       removal,
	})
	d.DBSecret = d.Postgres.Secret()
	// The hosted rotation logs in to the instance itself (not through the proxy) to change a password.
	d.Postgres.Connections().AllowDefaultPortFrom(n.Rotation, jsii.String("secret rotation to Postgres"))
	// The application role's secret names the instance too (the attachment adds host, port,
	// engine and dbname), which its hosted rotation needs; the functions still go through the
	// proxy (DATABASE_HOST).
	d.AppSecret = awsrds.NewDatabaseSecret(s, jsii.String("PostgresAppSecret"), &awsrds.DatabaseSecretProps{
		Username:   jsii.String(AppRoleName),
		SecretName: jsii.String(p.Prefix + "/postgres-app"),
	}).Attach(d.Postgres)
	// Each Postgres secret rotates itself every RotationDays: Secrets Manager's hosted
	// single-user rotation logs in as the secret's user and changes its own password. The
	// proxy reads the secrets at each new client login, the functions at a cold start (and
	// through the proxy they never see the database password change), and the migrate
	// function sets the application role's password from the secret's current version.
	for _, r := range []struct {
		id     string
		secret awssecretsmanager.ISecret
	}{{"Postgres", d.DBSecret}, {"PostgresApp", d.AppSecret}} {
		r.secret.AddRotationSchedule(jsii.String("Rotation"), &awssecretsmanager.RotationScheduleOptions{
			HostedRotation: awssecretsmanager.HostedRotation_PostgreSqlSingleUser(&awssecretsmanager.SingleUserHostedRotationOptions{
				FunctionName:   jsii.String(p.Prefix + "-rotate-" + strings.ToLower(r.id)),
				Vpc:            n.Vpc,
				VpcSubnets:     privateSubnets(),
				SecurityGroups: &[]awsec2.ISecurityGroup{n.Rotation},
			}),
			AutomaticallyAfter: awscdk.Duration_Days(jsii.Number(RotationDays)),
			// The first rotation comes RotationDays after the deploy, not during it (the
			// migrate trigger logs in with these secrets while the deploy runs).
			RotateImmediatelyOnUpdate: jsii.Bool(false),
		})
	}
	d.Budget = NewBudget(p)
	d.Proxy = awsrds.NewDatabaseProxy(s, jsii.String("PostgresProxy"), &awsrds.DatabaseProxyProps{
		DbProxyName: jsii.String(p.Prefix + "-postgres"),
		ProxyTarget: awsrds.ProxyTarget_FromInstance(d.Postgres),
		// The application role's secret for the functions, the master's for the migrate function.
		Secrets:                   &[]awssecretsmanager.ISecret{d.AppSecret, d.DBSecret},
		IamAuth:                   jsii.Bool(false),
		RequireTLS:                jsii.Bool(true),
		ClientPasswordAuthType:    awsrds.ClientPasswordAuthType_POSTGRES_SCRAM_SHA_256,
		MaxConnectionsPercent:     jsii.Number(float64(d.Budget.ProxyPercent)),
		MaxIdleConnectionsPercent: jsii.Number(float64(d.Budget.ProxyPercent) / 2),
		// Below every function's timeout: a request that cannot get a connection answers 503
		// (the store translates the proxy's error) instead of timing out.
		BorrowTimeout:  seconds(ProxyBorrowTimeoutSeconds),
		Vpc:            n.Vpc,
		VpcSubnets:     isolated,
		SecurityGroups: &[]awsec2.ISecurityGroup{n.Proxy},
	})
	d.DatabaseHost = d.Proxy.Endpoint()

	d.RedisAuth = awssecretsmanager.NewSecret(s, jsii.String("RedisAuth"), &awssecretsmanager.SecretProps{
		SecretName:  jsii.String(p.Prefix + "/redis-auth"),
		Description: jsii.String("lastunit Redis AUTH token"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength: jsii.Number(48), ExcludePunctuation: jsii.Bool(true), // AUTH tokens refuse some punctuation
		},
	})
	var subnetIDs []interface{}
	for _, id := range *n.Vpc.SelectSubnets(isolated).SubnetIds {
		subnetIDs = append(subnetIDs, id)
	}
	subnets := awselasticache.NewCfnSubnetGroup(s, jsii.String("RedisSubnets"), &awselasticache.CfnSubnetGroupProps{
		Description: jsii.String("lastunit Redis"), SubnetIds: &subnetIDs,
	})
	d.Redis = awselasticache.NewCfnReplicationGroup(s, jsii.String("Redis"), &awselasticache.CfnReplicationGroupProps{
		ReplicationGroupDescription: jsii.String("lastunit stock gate (keys hash-tagged by product)"),
		Engine:                      jsii.String("redis"),
		EngineVersion:               jsii.String("7.1"),
		CacheNodeType:               jsii.String("cache.t4g.micro"),
		ClusterMode:                 jsii.String("disabled"),
		NumCacheClusters:            jsii.Number(2), // a primary and one replica
		AutomaticFailoverEnabled:    jsii.Bool(true),
		MultiAzEnabled:              jsii.Bool(true),
		TransitEncryptionEnabled:    jsii.Bool(true),
		AtRestEncryptionEnabled:     jsii.Bool(true),
		AuthToken:                   d.RedisAuth.SecretValue().UnsafeUnwrap(), // a {{resolve:secretsmanager}} reference, not the value
		Port:                        jsii.Number(6379),
		CacheSubnetGroupName:        subnets.Ref(),
		SecurityGroupIds:            &[]*string{n.Redis.SecurityGroupId()},
		AutoMinorVersionUpgrade:     jsii.Bool(true),
	})
	d.RedisURL = awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("rediss://"), d.Redis.AttrPrimaryEndPointAddress(), jsii.String(":"), d.Redis.AttrPrimaryEndPointPort(), jsii.String("/0"),
	})

	d.Stripe = stripeSecret(s, "Stripe", p.StripeSecretArn, p.Prefix+"/stripe",
		`lastunit Stripe API key: {"secret_key": <API secret key>}`, StripeKeyPlaceholder)
	d.StripeWebhook = stripeSecret(s, "StripeWebhook", p.StripeWebhookSecretArn, p.Prefix+"/stripe-webhook",
		`lastunit Stripe webhook signing secret (the webhook function only): {"webhook_secret": <endpoint signing secret>}`, StripeWebhookPlaceholder)
	return d
}

// The Stripe secrets' empty placeholders (never real keys: make stripe-keys puts them in after
// the first deploy).
const (
	StripeKeyPlaceholder     = `{"secret_key":""}`
	StripeWebhookPlaceholder = `{"webhook_secret":""}`
)

// stripeSecret is an existing secret (arn) or a new one holding placeholder.
func stripeSecret(s awscdk.Stack, id, arn, secretName, desc, placeholder string) awssecretsmanager.ISecret {
	if arn != "" {
		return awssecretsmanager.Secret_FromSecretCompleteArn(s, jsii.String(id), jsii.String(arn))
	}
	return awssecretsmanager.NewSecret(s, jsii.String(id), &awssecretsmanager.SecretProps{
		SecretName:        jsii.String(secretName),
		Description:       jsii.String(desc),
		SecretStringValue: awscdk.SecretValue_UnsafePlainText(jsii.String(placeholder)),
	})
}

// Where the LocalStack functions find the compose file's services (localstack/compose.yaml):
// LocalStack runs the functions in containers on the compose network.
const (
	LocalPostgresHost  = "postgres"
	LocalRedisURL      = "redis://redis:6379/0"
	LocalStripeAPIBase = "http://stripe-mock:12111"
)

// newLocalData is Data for LocalStack: secrets in LocalStack's Secrets Manager that point at
// the compose file's Postgres (its well-known development password, nothing secret) and
// stripe-mock's test keys, and the compose Redis without AUTH.
func newLocalData(s awscdk.Stack, p Props) *Data {
	d := &Data{RedisURL: jsii.String(LocalRedisURL)}
	d.DBSecret = awssecretsmanager.NewSecret(s, jsii.String("PostgresSecret"), &awssecretsmanager.SecretProps{
		SecretName: jsii.String(p.Prefix + "/postgres"),
		SecretStringValue: awscdk.SecretValue_UnsafePlainText(jsii.String(
			`{"username":"postgres","password":"postgres","host":"` + LocalPostgresHost + `","port":5432,"dbname":"lastunit"}`)),
	})
	// The application role with a development password (nothing secret): the migrate function
	// creates it in the compose Postgres as in AWS.
	d.AppSecret = awssecretsmanager.NewSecret(s, jsii.String("PostgresAppSecret"), &awssecretsmanager.SecretProps{
		SecretName: jsii.String(p.Prefix + "/postgres-app"),
		SecretStringValue: awscdk.SecretValue_UnsafePlainText(jsii.String(
			`{"username":"` + AppRoleName + `","password":"lastunit-app-local","host":"` + LocalPostgresHost + `","port":5432,"dbname":"lastunit"}`)),
	})
	d.Budget = NewBudget(p)
	d.Stripe = awssecretsmanager.NewSecret(s, jsii.String("Stripe"), &awssecretsmanager.SecretProps{
		SecretName:        jsii.String(p.Prefix + "/stripe"),
		SecretStringValue: awscdk.SecretValue_UnsafePlainText(jsii.String(`{"secret_key":"sk_test_local"}`)),
	})
	d.StripeWebhook = awssecretsmanager.NewSecret(s, jsii.String("StripeWebhook"), &awssecretsmanager.SecretProps{
		SecretName:        jsii.String(p.Prefix + "/stripe-webhook"),
		SecretStringValue: awscdk.SecretValue_UnsafePlainText(jsii.String(`{"webhook_secret":"whsec_lastunit_local"}`)),
	})
	return d
}
