package stack

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscognito"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"
)

// AdminGroup is the Cognito group whose members may call the admin routes (API.md).
const AdminGroup = "admin"

// WebSocketStageName is the WebSocket API's stage.
const WebSocketStageName = "live"

// Default throttling of the APIs' stages (API.md's 429 rate_limited comes from here in AWS),
// overridden by Props (context apiRate, apiBurst, wsRate, wsBurst). The HTTP API's burst is
// the account's default burst quota (5,000); its rate leaves room in the account's default
// 10,000 requests per second for the WebSocket API and other APIs. Raise the account's
// quotas before raising these ("Before the drop" in the README).
const (
	DefaultAPIRate  = 3000 // requests per second, steady
	DefaultAPIBurst = 5000
	DefaultWSRate   = 1000 // messages per second (and $connect requests)
	DefaultWSBurst  = 2000
)

// APIs is the Cognito user pool and the two API Gateway APIs.
type APIs struct {
	UserPool       awscognito.UserPool
	UserPoolClient awscognito.UserPoolClient
	// AdminPool and AdminClient are the admins' pool and the dashboard's client (auth.go).
	AdminPool      awscognito.UserPool
	AdminClient    awscognito.UserPoolClient
	HTTP           awsapigatewayv2.HttpApi
	HTTPStage      awsapigatewayv2.HttpStage
	WebSocket      awsapigatewayv2.WebSocketApi
	WebSocketStage awsapigatewayv2.WebSocketStage
	// Routes is the HTTP API's routes (the migrate trigger runs before them).
	Routes []awsapigatewayv2.HttpRoute
	// WebSocketLogs is the WebSocket stage's access log group; LogRole the account's API
	// Gateway CloudWatch role that writes it.
	WebSocketLogs awslogs.LogGroup
	LogRole       awsiam.Role
}

// newWebSocketAPI builds the WebSocket API (route selection on the message's action) and its
// stage; its routes are added once the functions exist.
func (s *Stack) newWebSocketAPI() {
	a := s.APIs
	a.WebSocket = awsapigatewayv2.NewWebSocketApi(s.Stack, jsii.String("WebSocketApi"), &awsapigatewayv2.WebSocketApiProps{
		ApiName:                  name(s.Props.Prefix, "live"),
		Description:              jsii.String("lastunit live stock: subscribe/unsubscribe per product"),
		RouteSelectionExpression: jsii.String("$request.body.action"),
	})
	a.WebSocketStage = awsapigatewayv2.NewWebSocketStage(s.Stack, jsii.String("WebSocketStage"), &awsapigatewayv2.WebSocketStageProps{
		WebSocketApi: a.WebSocket,
		StageName:    jsii.String(WebSocketStageName),
		AutoDeploy:   jsii.Bool(true),
		Throttle: &awsapigatewayv2.ThrottleSettings{
			RateLimit: jsii.Number(float64(s.Props.WSRate)), BurstLimit: jsii.Number(float64(s.Props.WSBurst)),
		},
	})
	// Access logs: one JSON line per connect, message and disconnect. Unlike an HTTP API's, a
	// WebSocket stage logs through the account's API Gateway CloudWatch role (a setting of
	// the account and region, which this stack sets: docs/deploy-checks.md).
	a.WebSocketLogs = awslogs.NewLogGroup(s.Stack, jsii.String("WebSocketAccessLogs"), &awslogs.LogGroupProps{
		Retention: retention(s.Props.LogRetentionDays), RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	a.LogRole = awsiam.NewRole(s.Stack, jsii.String("ApiGatewayLogRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("apigateway.amazonaws.com"), nil),
		Description: jsii.String("API Gateway's CloudWatch Logs role of this account and region (the WebSocket stage's access logs)"),
		ManagedPolicies: &[]awsiam.IManagedPolicy{
			awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("service-role/AmazonAPIGatewayPushToCloudWatchLogs")),
		},
	})
	// Kept when the stack is deleted: the account's setting outlives the stack and would
	// otherwise name a deleted role, which breaks every other API's logging in the account.
	a.LogRole.ApplyRemovalPolicy(awscdk.RemovalPolicy_RETAIN)
	account := awsapigateway.NewCfnAccount(s.Stack, jsii.String("ApiGatewayAccount"), &awsapigateway.CfnAccountProps{
		CloudWatchRoleArn: a.LogRole.RoleArn(),
	})
	stage := a.WebSocketStage.Node().DefaultChild().(awsapigatewayv2.CfnStage)
	stage.SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: a.WebSocketLogs.LogGroupArn(),
		Format: jsii.String(`{"requestId":"$context.requestId","routeKey":"$context.routeKey","eventType":"$context.eventType",` +
			`"connectionId":"$context.connectionId","status":"$context.status","integrationLatencyMs":"$context.integrationLatency",` +
			`"error":"$context.error.message","ip":"$context.identity.sourceIp"}`),
	})
	stage.Node().AddDependency(account)
}

// wireWebSocketAPI adds the WebSocket routes.
func (s *Stack) wireWebSocketAPI() {
	integrations := map[string]awsapigatewayv2integrations.WebSocketLambdaIntegration{}
	for _, r := range WebSocketRoutes {
		in, ok := integrations[r.Function]
		if !ok {
			in = awsapigatewayv2integrations.NewWebSocketLambdaIntegration(jsii.String(logicalName(r.Function)+"WsIntegration"), s.Functions[r.Function], nil)
			integrations[r.Function] = in
		}
		s.APIs.WebSocket.AddRoute(jsii.String(r.Key), &awsapigatewayv2.WebSocketRouteOptions{Integration: in, ReturnResponse: jsii.Bool(r.TwoWay)})
	}
}

// newHTTPAPI builds the HTTP API: one route per HTTPRoutes entry, the JWT authorizer (the
// Cognito user pool, the web client as audience) on every non-public route, a public $default
// route for API.md's 404 shape, stage throttling and JSON access logs.
func (s *Stack) newHTTPAPI() {
	a := s.APIs
	a.HTTP = awsapigatewayv2.NewHttpApi(s.Stack, jsii.String("HttpApi"), &awsapigatewayv2.HttpApiProps{
		ApiName:            name(s.Props.Prefix, "http"),
		Description:        jsii.String("lastunit HTTP API (API.md)"),
		CreateDefaultStage: jsii.Bool(false),
		CorsPreflight:      s.corsPreflight(), // the pages on CloudFront (site.go); nil without them
	})
	a.HTTPStage = a.HTTP.AddStage(jsii.String("DefaultStage"), &awsapigatewayv2.HttpStageOptions{
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		Throttle: &awsapigatewayv2.ThrottleSettings{
			RateLimit: jsii.Number(float64(s.Props.APIRate)), BurstLimit: jsii.Number(float64(s.Props.APIBurst)),
		},
	})
	accessLogs := awslogs.NewLogGroup(s.Stack, jsii.String("HttpApiAccessLogs"), &awslogs.LogGroupProps{
		Retention: awslogs.RetentionDays_ONE_MONTH, RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	a.HTTPStage.Node().DefaultChild().(awsapigatewayv2.CfnStage).SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: accessLogs.LogGroupArn(),
		Format: jsii.String(`{"requestId":"$context.requestId","routeKey":"$context.routeKey","status":"$context.status",` +
			`"latencyMs":"$context.responseLatency","integrationLatencyMs":"$context.integrationLatency",` +
			`"sub":"$context.authorizer.claims.sub","authorizerError":"$context.authorizer.error","ip":"$context.identity.sourceIp"}`),
	})

	authorizer := awsapigatewayv2authorizers.NewHttpUserPoolAuthorizer(jsii.String("CognitoAuthorizer"), a.UserPool,
		&awsapigatewayv2authorizers.HttpUserPoolAuthorizerProps{
			AuthorizerName:  name(s.Props.Prefix, "cognito"),
			UserPoolClients: &[]awscognito.IUserPoolClient{a.UserPoolClient},
			IdentitySource:  jsii.Strings("$request.header.Authorization"),
		})
	adminAuthorizer := s.adminAuthorizer()
	integrations := map[string]awsapigatewayv2integrations.HttpLambdaIntegration{}
	integration := func(fn string) awsapigatewayv2integrations.HttpLambdaIntegration {
		in, ok := integrations[fn]
		if !ok {
			in = awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String(logicalName(fn)+"Integration"), s.invokable(fn), nil)
			integrations[fn] = in
		}
		return in
	}
	for _, r := range HTTPRoutes {
		props := &awsapigatewayv2.HttpRouteProps{
			HttpApi:     a.HTTP,
			RouteKey:    awsapigatewayv2.HttpRouteKey_With(jsii.String(r.Path()), awsapigatewayv2.HttpMethod(r.Method())),
			Integration: integration(r.Function),
		}
		switch r.Access {
		case Admin:
			props.Authorizer = adminAuthorizer // the admins' pool only (auth.go)
		case Shopper:
			props.Authorizer = authorizer
		}
		a.Routes = append(a.Routes, awsapigatewayv2.NewHttpRoute(s.Stack, jsii.String("Route"+routeID(r.Key)), props))
	}
	a.Routes = append(a.Routes, awsapigatewayv2.NewHttpRoute(s.Stack, jsii.String("RouteDefault"), &awsapigatewayv2.HttpRouteProps{
		HttpApi: a.HTTP, RouteKey: awsapigatewayv2.HttpRouteKey_DEFAULT(), Integration: integration(DefaultRouteFunction),
	}))
}

// routeID turns "POST /admin/failed-jobs/{order_id}/retry" into "PostAdminFailedjobsOrderidRetry".
func routeID(key string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(strings.ToLower(key), func(r rune) bool { return r == ' ' || r == '/' }) {
		part = strings.NewReplacer("{", "", "}", "", "-", "", "_", "").Replace(part)
		b.WriteString(logicalName(part))
	}
	return b.String()
}
