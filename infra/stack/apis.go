package stack

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscognito"
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
	HTTP           awsapigatewayv2.HttpApi
	HTTPStage      awsapigatewayv2.HttpStage
	WebSocket      awsapigatewayv2.WebSocketApi
	WebSocketStage awsapigatewayv2.WebSocketStage
	// Routes is the HTTP API's routes (the migrate trigger runs before them).
	Routes []awsapigatewayv2.HttpRoute
}

// newIdentity builds the user pool (e-mail sign-in, self sign-up for shoppers), a public web
// client (SRP and USER_PASSWORD_AUTH, no secret) and the admin group, whose members' tokens carry cognito:groups.
func newIdentity(s awscdk.Stack, prefix string) *APIs {
	a := &APIs{}
	a.UserPool = awscognito.NewUserPool(s, jsii.String("Users"), &awscognito.UserPoolProps{
		UserPoolName:      name(prefix, "users"),
		SelfSignUpEnabled: jsii.Bool(true),
		SignInAliases:     &awscognito.SignInAliases{Email: jsii.Bool(true)},
		AutoVerify:        &awscognito.AutoVerifiedAttrs{Email: jsii.Bool(true)},
		AccountRecovery:   awscognito.AccountRecovery_EMAIL_ONLY,
		PasswordPolicy: &awscognito.PasswordPolicy{
			MinLength: jsii.Number(12), RequireDigits: jsii.Bool(true), RequireLowercase: jsii.Bool(true),
			RequireUppercase: jsii.Bool(true), RequireSymbols: jsii.Bool(false),
		},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN, // user accounts outlive a stack
	})
	a.UserPoolClient = a.UserPool.AddClient(jsii.String("WebClient"), &awscognito.UserPoolClientOptions{
		UserPoolClientName:         name(prefix, "web"),
		AuthFlows:                  &awscognito.AuthFlow{UserSrp: jsii.Bool(true), UserPassword: jsii.Bool(true)}, // SRP for browsers, password for the CLI
		GenerateSecret:             jsii.Bool(false),
		PreventUserExistenceErrors: jsii.Bool(true),
		AccessTokenValidity:        awscdk.Duration_Hours(jsii.Number(1)),
		IdTokenValidity:            awscdk.Duration_Hours(jsii.Number(1)),
	})
	awscognito.NewCfnUserPoolGroup(s, jsii.String("AdminGroup"), &awscognito.CfnUserPoolGroupProps{
		UserPoolId:  a.UserPool.UserPoolId(),
		GroupName:   jsii.String(AdminGroup),
		Description: jsii.String("lastunit admins: the /admin routes (the functions check the group too)"),
	})
	return a
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
		if r.Access != Public {
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
