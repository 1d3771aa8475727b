package stack

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"
)

// TestHTTPRoutes: every route of API.md exists with its function, and the JWT authorizer
// guards exactly the non-public ones.
func TestHTTPRoutes(t *testing.T) {
	s, tp, d := synth(t)
	integrationOf := map[string]string{} // integration logical id → function name
	for id, r := range d.ofType("AWS::ApiGatewayV2::Integration") {
		for _, ref := range refs(r.Properties["IntegrationUri"]) {
			for _, f := range Functions {
				if ref == logicalID(s, s.Functions[f.Name]) {
					integrationOf[id] = f.Name
				}
				// reserve and checkout through their live alias (TestPrewarm)
				if a, ok := s.Aliases[f.Name]; ok && ref == logicalID(s, a) {
					integrationOf[id] = f.Name
				}
			}
		}
	}
	routes := append([]HTTPRoute{}, HTTPRoutes...)
	routes = append(routes, HTTPRoute{Key: "$default", Function: DefaultRouteFunction, Access: Public})
	for _, r := range routes {
		t.Run(r.Key, func(t *testing.T) {
			auth := "NONE"
			if r.Access != Public {
				auth = "JWT"
			}
			has(t, "route "+r.Key, func() {
				tp.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Route"), props(map[string]any{
					"RouteKey": r.Key, "AuthorizationType": auth,
					"ApiId": map[string]any{"Ref": logicalID(s, s.APIs.HTTP)},
				}))
			})
			for _, route := range d.ofType("AWS::ApiGatewayV2::Route") {
				if route.Properties["RouteKey"] != r.Key || refs(route.Properties["ApiId"])[0] != logicalID(s, s.APIs.HTTP) {
					continue
				}
				targets := refs(route.Properties["Target"])
				if len(targets) != 1 || integrationOf[targets[0]] != r.Function {
					t.Errorf("%s goes to %v, want the %s function", r.Key, targets, r.Function)
				}
				if r.Access != Public && len(refs(route.Properties["AuthorizerId"])) != 1 {
					t.Errorf("%s has no authorizer", r.Key)
				}
			}
		})
	}
	has(t, "route count", func() {
		tp.ResourcePropertiesCountIs(jsii.String("AWS::ApiGatewayV2::Route"),
			props(map[string]any{"ApiId": map[string]any{"Ref": logicalID(s, s.APIs.HTTP)}}), jsii.Number(float64(len(routes))))
	})
}

// handlerRoutes reads shared/handler's route keys and their access ("Public", "Shopper",
// "Admin") from the source: m.Handle(RouteX, apigw.Access, ...).
func handlerRoutes(t *testing.T) map[string]string {
	t.Helper()
	consts, files := parseHandlers(t)
	out := map[string]string{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Handle" {
				return true
			}
			key, ok := call.Args[0].(*ast.Ident)
			access, ok2 := call.Args[1].(*ast.SelectorExpr)
			if ok && ok2 && consts[key.Name] != "" {
				out[consts[key.Name]] = access.Sel.Name
			}
			return true
		})
	}
	if len(out) == 0 {
		t.Fatal("found no routes in shared/handler")
	}
	return out
}

// handlerConsts is shared/handler's string constants by name.
func handlerConsts(t *testing.T) map[string]string {
	consts, _ := parseHandlers(t)
	return consts
}

// parseHandlers parses shared/handler's non-test files and collects their string constants.
func parseHandlers(t *testing.T) (map[string]string, []*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	consts := map[string]string{}
	var files []*ast.File
	paths, _ := filepath.Glob("../../shared/handler/*.go")
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok {
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[name.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
			return true
		})
	}
	return consts, files
}

// TestRoutesMatchHandlerCode: the stack's HTTP routes are exactly the handlers' route keys,
// with the same access, so a route added to the code and not to the stack fails here.
func TestRoutesMatchHandlerCode(t *testing.T) {
	code := handlerRoutes(t)
	names := map[Access]string{Public: "Public", Shopper: "Shopper", Admin: "Admin"}
	stackRoutes := map[string]string{}
	for _, r := range HTTPRoutes {
		stackRoutes[r.Key] = names[r.Access]
	}
	if !reflect.DeepEqual(code, stackRoutes) {
		t.Errorf("routes differ\ncode:  %v\nstack: %v", code, stackRoutes)
	}
}

// TestWebSocketRoutesMatchHandlerCode: the stack's WebSocket routes are shared/handler's
// RouteWS* route keys.
func TestWebSocketRoutesMatchHandlerCode(t *testing.T) {
	code := map[string]bool{}
	for name, key := range handlerConsts(t) {
		if strings.HasPrefix(name, "RouteWS") {
			code[key] = true
		}
	}
	stackRoutes := map[string]bool{}
	for _, r := range WebSocketRoutes {
		stackRoutes[r.Key] = true
	}
	if len(code) == 0 || !reflect.DeepEqual(code, stackRoutes) {
		t.Errorf("WebSocket routes differ\ncode:  %v\nstack: %v", sorted(code), sorted(stackRoutes))
	}
}

// TestJWTAuthorizerAndAdminGroup: the HTTP API's authorizer is a JWT authorizer on the Cognito
// user pool with the web client as audience, and the pool has the admin group.
func TestJWTAuthorizerAndAdminGroup(t *testing.T) {
	s, tp, _ := synth(t)
	pool, client := logicalID(s, s.APIs.UserPool), logicalID(s, s.APIs.UserPoolClient)
	has(t, "authorizer", func() {
		tp.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Authorizer"), props(map[string]any{
			"AuthorizerType": "JWT",
			"IdentitySource": []any{"$request.header.Authorization"},
			"JwtConfiguration": map[string]any{
				"Audience": []any{map[string]any{"Ref": client}},
				"Issuer": map[string]any{"Fn::Join": []any{"", []any{
					"https://cognito-idp.", map[string]any{"Ref": "AWS::Region"}, ".amazonaws.com/", map[string]any{"Ref": pool},
				}}},
			},
		}))
	})
	has(t, "admin group, in the admins' pool (auth.go)", func() {
		tp.HasResourceProperties(jsii.String("AWS::Cognito::UserPoolGroup"), props(map[string]any{
			"GroupName": AdminGroup, "UserPoolId": map[string]any{"Ref": logicalID(s, s.APIs.AdminPool)},
		}))
	})
	has(t, "public client", func() {
		tp.HasResourceProperties(jsii.String("AWS::Cognito::UserPoolClient"), props(map[string]any{
			"GenerateSecret": false, "UserPoolId": map[string]any{"Ref": pool},
		}))
	})
}

// TestWebSocketAPI: route selection on the body's action, the five routes to wsconnect, the
// stage, and the management API permission of the functions that post to connections.
func TestWebSocketAPI(t *testing.T) {
	s, tp, d := synth(t)
	api := logicalID(s, s.APIs.WebSocket)
	has(t, "api", func() {
		tp.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Api"), props(map[string]any{
			"ProtocolType": "WEBSOCKET", "RouteSelectionExpression": "$request.body.action",
		}))
	})
	has(t, "stage", func() {
		tp.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), props(map[string]any{
			"ApiId": map[string]any{"Ref": api}, "StageName": WebSocketStageName, "AutoDeploy": true,
		}))
	})
	routeIDs := map[string]string{} // route key → logical id
	for id, r := range d.ofType("AWS::ApiGatewayV2::Route") {
		if refs(r.Properties["ApiId"])[0] == api {
			routeIDs[fmt.Sprint(r.Properties["RouteKey"])] = id
		}
	}
	twoWay := map[string]bool{} // route logical id → has a route response
	for _, r := range d.ofType("AWS::ApiGatewayV2::RouteResponse") {
		if r.Properties["RouteResponseKey"] == "$default" {
			twoWay[refs(r.Properties["RouteId"])[0]] = true
		}
	}
	for _, r := range WebSocketRoutes {
		t.Run(r.Key, func(t *testing.T) {
			id, ok := routeIDs[r.Key]
			if !ok {
				t.Fatalf("no WebSocket route %s", r.Key)
			}
			if twoWay[id] != r.TwoWay {
				t.Errorf("%s: route response = %v, want %v (the function's answer goes back to the client)", r.Key, twoWay[id], r.TwoWay)
			}
		})
	}
	if len(routeIDs) != len(WebSocketRoutes) {
		t.Errorf("%d WebSocket routes, want %d", len(routeIDs), len(WebSocketRoutes))
	}
	wsconnect := logicalID(s, s.Functions["wsconnect"])
	for id, r := range d.ofType("AWS::ApiGatewayV2::Integration") {
		if refs(r.Properties["ApiId"])[0] == api && !contains(refs(r.Properties["IntegrationUri"]), wsconnect) {
			t.Errorf("WebSocket integration %s does not invoke wsconnect", id)
		}
	}
	for _, f := range Functions {
		got := grants(t, s, d, f.Name)["execute-api:ManageConnections@ws"]
		if got != f.ManageConnections {
			t.Errorf("%s: execute-api:ManageConnections = %v, want %v", f.Name, got, f.ManageConnections)
		}
	}
}

// TestQueuesAndDeadLetters: both queues dead-letter to their own DLQ after 3 receives, with a
// visibility timeout of six times their consumer's timeout, encrypted, TLS only.
func TestQueuesAndDeadLetters(t *testing.T) {
	s, tp, _ := synth(t)
	tests := []struct {
		queue, dlq string
		main, dead interface{ Node() constructsNode }
		consumer   string
	}{
		{"lastunit-fulfill-order", "lastunit-fulfill-order-dlq", s.Queues.Fulfill, s.Queues.FulfillDLQ, "fulfill"},
		{"lastunit-stock-updates", "lastunit-stock-updates-dlq", s.Queues.StockUpdates, s.Queues.StockUpdatesDLQ, "broadcast"},
	}
	for _, tt := range tests {
		t.Run(tt.queue, func(t *testing.T) {
			has(t, "queue", func() {
				tp.HasResourceProperties(jsii.String("AWS::SQS::Queue"), props(map[string]any{
					"QueueName":            tt.queue,
					"VisibilityTimeout":    6 * lookup(tt.consumer).TimeoutSeconds,
					"SqsManagedSseEnabled": true,
					"RedrivePolicy": map[string]any{
						"deadLetterTargetArn": map[string]any{"Fn::GetAtt": []any{logicalID(s, tt.dead), "Arn"}},
						"maxReceiveCount":     MaxReceiveCount,
					},
				}))
			})
			has(t, "dead-letter queue", func() {
				tp.HasResourceProperties(jsii.String("AWS::SQS::Queue"), props(map[string]any{
					"QueueName": tt.dlq, "MessageRetentionPeriod": 14 * 24 * 3600, "RedrivePolicy": assertions.Match_Absent(),
				}))
			})
		})
	}
	if MaxReceiveCount != 3 {
		t.Errorf("MaxReceiveCount = %d, want 3 (shared/queue.MaxReceives)", MaxReceiveCount)
	}
}

// TestSQSEventSources: fulfill and broadcast consume their queues reporting partial batch failures.
func TestSQSEventSources(t *testing.T) {
	s, tp, _ := synth(t)
	tests := []struct {
		fn    string
		queue interface{ Node() constructsNode }
	}{
		{"fulfill", s.Queues.Fulfill},
		{"broadcast", s.Queues.StockUpdates},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			has(t, "event source", func() {
				tp.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), props(map[string]any{
					"FunctionName":          map[string]any{"Ref": logicalID(s, s.Functions[tt.fn])},
					"EventSourceArn":        map[string]any{"Fn::GetAtt": []any{logicalID(s, tt.queue), "Arn"}},
					"FunctionResponseTypes": []any{"ReportBatchItemFailures"},
				}))
			})
		})
	}
	has(t, "mapping count", func() { tp.ResourceCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), jsii.Number(2)) })
}

// TestSchedules: expire every minute without retries, janitor daily.
func TestSchedules(t *testing.T) {
	s, tp, _ := synth(t)
	tests := []struct{ fn, schedule string }{
		{"expire", "rate(1 minute)"},
		{"janitor", JanitorSchedule},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			has(t, "rule", func() {
				tp.HasResourceProperties(jsii.String("AWS::Events::Rule"), props(map[string]any{
					"ScheduleExpression": tt.schedule,
					"State":              "ENABLED",
					"Targets": []any{assertions.Match_ObjectLike(props(map[string]any{
						"Arn": map[string]any{"Fn::GetAtt": []any{logicalID(s, s.Functions[tt.fn]), "Arn"}},
					}))},
				}))
			})
		})
	}
	if !regexp.MustCompile(`^cron\(\d+ \d+ \* \* \? \*\)$`).MatchString(JanitorSchedule) {
		t.Errorf("janitor schedule %q is not once a day", JanitorSchedule)
	}
	has(t, "expire: no async retries", func() {
		tp.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), props(map[string]any{
			"FunctionName": map[string]any{"Ref": logicalID(s, s.Functions["expire"])}, "MaximumRetryAttempts": 0,
		}))
	})
}

// TestAlarms: DLQ depth > 0 on both dead-letter queues and the schedule-failures queue, errors and throttles of every
// function, and the business alarms (TestBusinessAlarms), each notifying the alarm topic.
func TestAlarms(t *testing.T) {
	s, tp, _ := synth(t)
	topic := map[string]any{"Ref": logicalID(s, s.AlarmTopic)}
	type alarm struct {
		name      string
		metric    string
		namespace string
		dims      []any
	}
	var tests []alarm
	for _, q := range []interface{ Node() constructsNode }{s.Queues.FulfillDLQ, s.Queues.StockUpdatesDLQ, s.Queues.ScheduleFailures} {
		tests = append(tests, alarm{"dlq " + *q.Node().Id(), "ApproximateNumberOfMessagesVisible", "AWS/SQS",
			[]any{map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": []any{logicalID(s, q), "QueueName"}}}}})
	}
	for _, b := range BusinessAlarms { // TestBusinessAlarms checks them
		tests = append(tests, alarm{b.ID, b.Metric, "lastunit", []any{map[string]any{"Name": "Service", "Value": b.Service}}})
	}
	for _, f := range Functions {
		for _, m := range []string{"Errors", "Throttles"} {
			tests = append(tests, alarm{f.Name + " " + m, m, "AWS/Lambda",
				[]any{map[string]any{"Name": "FunctionName", "Value": map[string]any{"Ref": logicalID(s, s.Functions[f.Name])}}}})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			has(t, "alarm", func() {
				tp.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), props(map[string]any{
					"MetricName": tt.metric, "Namespace": tt.namespace, "Dimensions": tt.dims,
					"ComparisonOperator": "GreaterThanThreshold", "Threshold": 0,
					"AlarmActions": []any{topic},
				}))
			})
		})
	}
	has(t, "alarm count", func() { tp.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(float64(len(tests)))) })
}

// TestFunctions: every function is arm64 provided.al2023 with the bootstrap handler, in the
// VPC's private subnets, traced by X-Ray, logging JSON into its own log group with a retention.
func TestFunctions(t *testing.T) {
	s, tp, d := synth(t)
	// Besides the CDK's web upload function (TestSite), the trigger's provider (TestMigrateTrigger)
	// and the Redis token's rotation (TestSecretRotation).
	if got := len(d.ofType("AWS::Lambda::Function")) - 3; got != len(Functions) {
		t.Errorf("%d functions in the template besides the web upload, the trigger provider and the Redis rotation, want %d", got, len(Functions))
	}
	for _, f := range Functions {
		t.Run(f.Name, func(t *testing.T) {
			logs := d.functionLogGroup(t, f.Name)
			// Redis users are in Functions, Postgres users in PostgresClients (TestNetworkPaths).
			var sgs []any
			if !f.Owner {
				sgs = append(sgs, map[string]any{"Fn::GetAtt": []any{logicalID(s, s.Network.Functions), "GroupId"}})
			}
			if f.Postgres {
				sgs = append(sgs, map[string]any{"Fn::GetAtt": []any{logicalID(s, s.Network.PostgresClients), "GroupId"}})
			}
			has(t, "function", func() {
				tp.HasResourceProperties(jsii.String("AWS::Lambda::Function"), props(map[string]any{
					"FunctionName":  "lastunit-" + f.Name,
					"Runtime":       "provided.al2023",
					"Architectures": []any{"arm64"},
					"Handler":       "bootstrap",
					"MemorySize":    f.MemoryMB,
					"Timeout":       f.TimeoutSeconds,
					"TracingConfig": map[string]any{"Mode": "Active"},
					"LoggingConfig": map[string]any{"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "WARN",
						"LogGroup": map[string]any{"Ref": logs}},
					"VpcConfig": map[string]any{"SecurityGroupIds": sgs},
				}))
			})
			has(t, "log group", func() {
				tp.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), props(map[string]any{
					"LogGroupName": "/aws/lambda/lastunit-" + f.Name, "RetentionInDays": 30,
				}))
			})
			for _, sub := range d.Resources[d.functionID(t, f.Name)].Properties["VpcConfig"].(map[string]any)["SubnetIds"].([]any) {
				if id := refs(sub)[0]; !strings.Contains(id, "functions") {
					t.Errorf("%s runs in subnet %s, want the private functions subnets", f.Name, id)
				}
			}
		})
	}
}

// functionLogGroup is the logical id of the log group a function logs to.
func (d cfnTemplate) functionLogGroup(t *testing.T, name string) string {
	t.Helper()
	cfg, _ := d.Resources[d.functionID(t, name)].Properties["LoggingConfig"].(map[string]any)
	if r := refs(cfg["LogGroup"]); len(r) == 1 {
		return r[0]
	}
	t.Fatalf("%s: no log group", name)
	return ""
}

// codeEnvVars is every environment variable name the functions' code reads: the upper-case
// string literals of shared/ and functions/ (non-test files) that name one.
func codeEnvVars(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{"AWS_REGION": true}
	re := regexp.MustCompile(`"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"`)
	for _, glob := range []string{"../../shared/*/*.go", "../../functions/*/*.go"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			if strings.HasSuffix(p, "_test.go") || strings.Contains(p, "testenv") {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				out[m[1]] = true
			}
		}
	}
	return out
}

// TestEnvironment: each function gets exactly the variables it needs, every one of them is
// read by the code, and no secret value is among them (only ARNs of secrets).
func TestEnvironment(t *testing.T) {
	_, _, d := synth(t)
	read := codeEnvVars(t)
	common := []string{"FAILED_JOB_MAX_AGE", "PAYMENT_WINDOW", "QUEUE_PREFIX", "REDIS_AUTH_SECRET_ARN", "REDIS_URL", "RESERVATION_TTL"}
	db := []string{"DATABASE_SECRET_ARN", "DATABASE_HOST", "DATABASE_SSLMODE", "DB_MAX_CONNS"}
	stock := []string{"STOCK_UPDATES_QUEUE_URL"}
	stripe := []string{"STRIPE_SECRET_ARN"}
	tests := []struct {
		fn    string
		extra [][]string
	}{
		{"reserve", [][]string{common, db, stock}},
		{"checkout", [][]string{common, db, stock, stripe}},
		{"webhook", [][]string{common, db, stock, stripe, {"STRIPE_WEBHOOK_SECRET_ARN", "FULFILL_QUEUE_URL"}}},
		{"fulfill", [][]string{common, db, stock}},
		{"admin", [][]string{common, db, stock, stripe, {"FULFILL_QUEUE_URL", "FULFILL_DLQ_URL"}}},
		{"expire", [][]string{common, db, stock, stripe}},
		{"janitor", [][]string{common, db, stock, stripe, {"FULFILL_QUEUE_URL", "FULFILL_DLQ_URL"}}},
		{"wsconnect", [][]string{common, {"JWT_ISSUER", "JWT_CLIENT_ID"}}},
		{"broadcast", [][]string{common, {"WS_MANAGEMENT_ENDPOINT"}}},
		{"migrate", [][]string{{"DATABASE_SECRET_ARN", "DATABASE_HOST", "DATABASE_SSLMODE", "APP_DATABASE_SECRET_ARN"}}},
	}
	if len(tests) != len(Functions) {
		t.Fatalf("%d functions tested, %d in the stack", len(tests), len(Functions))
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			want := map[string]bool{}
			for _, ks := range tt.extra {
				for _, k := range ks {
					want[k] = true
				}
			}
			vars := d.Resources[d.functionID(t, tt.fn)].Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
			got := map[string]bool{}
			for k, v := range vars {
				got[k] = true
				if !read[k] {
					t.Errorf("%s is set but no code reads it", k)
				}
				switch k {
				case "DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE", "LOCAL_JWT_SECRET", "SQS_ENDPOINT":
					t.Errorf("%s must not be set in AWS", k)
				case "MIGRATE_ON_START": // only the migrate function migrates, once per deploy
					t.Errorf("%s must not be set: the migrate function runs the migrations", k)
				}
				if strings.HasSuffix(k, "_SECRET_ARN") && len(refs(v)) != 1 {
					t.Errorf("%s = %v, want a reference to a secret", k, v)
				}
			}
			if !reflect.DeepEqual(sorted(got), sorted(want)) {
				t.Errorf("environment\n got  %v\n want %v", sorted(got), sorted(want))
			}
		})
	}
}

// grants is a function's IAM permissions as "action@resource", resources named by what they
// are (db-secret, redis-auth, stripe, fulfill, fulfill-dlq, stock, stock-dlq, ws...) or "*".
func grants(t *testing.T, s *Stack, d cfnTemplate, fn string) map[string]bool {
	t.Helper()
	return roleGrants(s, d, refs(d.Resources[d.functionID(t, fn)].Properties["Role"])[0])
}

// roleGrants is what grants says of a function, for any role.
func roleGrants(s *Stack, d cfnTemplate, role string) map[string]bool {
	names := map[string]string{
		logicalID(s, s.Data.DBSecret):           "db-secret",
		logicalID(s, s.Data.AppSecret):          "db-app-secret",
		logicalID(s, s.Data.RedisAuth):          "redis-auth",
		*s.Stack.GetLogicalId(s.Data.Redis):     "redis",
		logicalID(s, s.Data.Stripe):             "stripe",
		logicalID(s, s.Data.StripeWebhook):      "stripe-webhook",
		logicalID(s, s.Queues.Fulfill):          "fulfill",
		logicalID(s, s.Queues.FulfillDLQ):       "fulfill-dlq",
		logicalID(s, s.Queues.StockUpdates):     "stock",
		logicalID(s, s.Queues.StockUpdatesDLQ):  "stock-dlq",
		logicalID(s, s.Queues.ScheduleFailures): "schedule-failures",
		logicalID(s, s.APIs.WebSocket):          "ws",
		logicalID(s, s.Network.FlowLogs):        "flow-logs",
	}
	out := map[string]bool{}
	for _, p := range d.ofType("AWS::IAM::Policy") {
		if !contains(refs(p.Properties["Roles"]), role) {
			continue
		}
		for _, st := range p.Properties["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := st.(map[string]any)
			if st["Effect"] != "Allow" {
				continue
			}
			for _, a := range strs(st["Action"]) {
				for _, r := range strs(st["Resource"]) {
					res := "*"
					if r != "*" {
						ids := refs(r)
						if len(ids) == 0 || names[ids[len(ids)-1]] == "" {
							res = fmt.Sprint(r)
						} else {
							res = names[ids[len(ids)-1]]
						}
					}
					out[fmt.Sprintf("%s@%s", a, res)] = true
				}
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// TestIAMLeastPrivilege: each function's role allows exactly these actions on exactly these
// resources (plus X-Ray, which has no resource-level permissions, and the AWS managed
// policies for logs and VPC networking).
func TestIAMLeastPrivilege(t *testing.T) {
	s, _, d := synth(t)
	xray := []string{"xray:PutTraceSegments@*", "xray:PutTelemetryRecords@*"}
	redis := "secretsmanager:GetSecretValue@redis-auth"
	app := "secretsmanager:GetSecretValue@db-app-secret"
	master := "secretsmanager:GetSecretValue@db-secret"
	stripe := "secretsmanager:GetSecretValue@stripe"
	sendStock := "sqs:SendMessage@stock"
	dlq := []string{"sqs:ReceiveMessage@fulfill-dlq", "sqs:DeleteMessage@fulfill-dlq", "sqs:ChangeMessageVisibility@fulfill-dlq"}
	consume := func(q string) []string {
		var out []string
		for _, a := range []string{"ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility", "GetQueueAttributes", "GetQueueUrl"} {
			out = append(out, "sqs:"+a+"@"+q)
		}
		return out
	}
	ws := "execute-api:ManageConnections@ws"
	// The scheduled functions' on-failure destination (the CDK's grant for an SQS destination).
	failed := []string{"sqs:SendMessage@schedule-failures", "sqs:GetQueueAttributes@schedule-failures", "sqs:GetQueueUrl@schedule-failures"}
	tests := []struct {
		fn   string
		want []string
	}{
		{"reserve", []string{redis, app, sendStock}},
		{"checkout", []string{redis, app, sendStock, stripe}},
		// Only the webhook function reads the signing secret (the outside review).
		{"webhook", []string{redis, app, sendStock, stripe, "secretsmanager:GetSecretValue@stripe-webhook", "sqs:SendMessage@fulfill"}},
		{"fulfill", append([]string{redis, app, sendStock}, consume("fulfill")...)},
		{"admin", append([]string{redis, app, sendStock, stripe, "sqs:SendMessage@fulfill"}, dlq...)},
		{"expire", append([]string{redis, app, sendStock, stripe}, failed...)},
		{"janitor", append(append([]string{redis, app, sendStock, stripe}, dlq...), failed...)},
		{"wsconnect", []string{redis}},
		{"broadcast", append([]string{redis, ws}, consume("stock")...)},
		// Only the migrate function reads the master secret; it needs no Redis.
		{"migrate", []string{master, app}},
	}
	if len(tests) != len(Functions) {
		t.Fatalf("%d functions tested, %d in the stack", len(tests), len(Functions))
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			want := map[string]bool{}
			for _, g := range append(append([]string{}, xray...), tt.want...) {
				want[g] = true
			}
			got := grants(t, s, d, tt.fn)
			if !reflect.DeepEqual(sorted(got), sorted(want)) {
				t.Errorf("grants\n got  %v\n want %v", sorted(got), sorted(want))
			}
		})
	}
}

// TestNoWildcards: no policy in the stack allows a wildcard action ("*", "sqs:*", ...), and
// only X-Ray's actions (which take no resource) are allowed on every resource. The CDK's web
// upload function is the exception, held to the site's bucket and the asset bucket by TestSite.
func TestNoWildcards(t *testing.T) {
	_, _, d := synth(t)
	resourceless := map[string]bool{"xray:PutTraceSegments": true, "xray:PutTelemetryRecords": true,
		"secretsmanager:GetRandomPassword": true} // the Redis rotation's (TestSupportRoles)
	upload := d.webUploadRole(t)
	for id, p := range d.ofType("AWS::IAM::Policy") {
		if contains(refs(p.Properties["Roles"]), upload) {
			continue
		}
		for _, st := range p.Properties["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := st.(map[string]any)
			for _, a := range strs(st["Action"]) {
				if strings.Contains(fmt.Sprint(a), "*") {
					t.Errorf("%s allows the wildcard action %v", id, a)
				}
				for _, r := range strs(st["Resource"]) {
					if r == "*" && !resourceless[fmt.Sprint(a)] {
						t.Errorf("%s allows %v on every resource", id, a)
					}
				}
			}
		}
	}
	functionRoles := map[string]bool{}
	for _, f := range Functions {
		functionRoles[refs(d.Resources[d.functionID(t, f.Name)].Properties["Role"])[0]] = true
	}
	others := map[string]bool{upload: true, d.proxyRole(t): true, d.triggerProviderRole(t): true}
	for _, r := range supportRoles(t, d) { // TestSupportRoles
		others[r] = true
	}
	for id, r := range d.ofType("AWS::IAM::Role") {
		if !functionRoles[id] && !others[id] {
			t.Errorf("role %s is neither a function's, the web upload's, the proxy's, the trigger provider's nor one of TestSupportRoles': a new role needs its own least-privilege test", id)
		}
		// Inline policies (the CDK's custom-resource providers write them there).
		for _, p := range asList(r.Properties["Policies"]) {
			doc, _ := p.(map[string]any)["PolicyDocument"].(map[string]any)
			for _, st := range asList(doc["Statement"]) {
				st := st.(map[string]any)
				for _, a := range strs(st["Action"]) {
					if strings.Contains(fmt.Sprint(a), "*") {
						t.Errorf("role %s allows the wildcard action %v", id, a)
					}
					for _, res := range strs(st["Resource"]) {
						if res == "*" && !resourceless[fmt.Sprint(a)] {
							t.Errorf("role %s allows %v on every resource", id, a)
						}
					}
				}
			}
		}
	}
	if len(functionRoles) != len(Functions) {
		t.Errorf("%d function roles for %d functions: each function has its own", len(functionRoles), len(Functions))
	}
}

// TestSecretsStayOutOfTemplate: no key or token is in the template; the Redis AUTH token is a
// dynamic reference and the Stripe secret is created empty.
func TestSecretsStayOutOfTemplate(t *testing.T) {
	s, tp, d := synth(t)
	raw, _ := json.Marshal(d)
	for _, bad := range []string{"sk_live_", "sk_test_", "rk_live_", "whsec_", "lastunit-local-secret"} {
		if strings.Contains(string(raw), bad) {
			t.Errorf("the template contains %q", bad)
		}
	}
	has(t, "redis auth token", func() {
		tp.HasResourceProperties(jsii.String("AWS::ElastiCache::ReplicationGroup"), props(map[string]any{
			"AuthToken": map[string]any{"Fn::Join": []any{"", []any{
				"{{resolve:secretsmanager:", map[string]any{"Ref": logicalID(s, s.Data.RedisAuth)}, ":SecretString:::}}",
			}}},
		}))
	})
	has(t, "empty stripe API key placeholder", func() {
		tp.HasResourceProperties(jsii.String("AWS::SecretsManager::Secret"), props(map[string]any{
			"Name": "lastunit/stripe", "SecretString": StripeKeyPlaceholder,
		}))
	})
	has(t, "empty webhook signing secret placeholder", func() {
		tp.HasResourceProperties(jsii.String("AWS::SecretsManager::Secret"), props(map[string]any{
			"Name": "lastunit/stripe-webhook", "SecretString": StripeWebhookPlaceholder,
		}))
	})
}

// TestDataStores: Postgres with generated credentials in Secrets Manager, encrypted, private,
// of the default class; Redis non-cluster with a replica, automatic failover, Multi-AZ and TLS
// (who reaches them: TestNetworkPaths).
func TestDataStores(t *testing.T) {
	_, tp, _ := synth(t)
	has(t, "postgres", func() {
		tp.HasResourceProperties(jsii.String("AWS::RDS::DBInstance"), props(map[string]any{
			"DBInstanceClass": "db." + DefaultInstanceClass, "Engine": "postgres", "DBName": "lastunit", "StorageEncrypted": true, "PubliclyAccessible": false, "StorageType": "gp3",
			"MasterUsername": assertions.Match_AnyValue(), "MasterUserPassword": assertions.Match_AnyValue(),
		}))
	})
	has(t, "postgres secret attached", func() {
		tp.HasResourceProperties(jsii.String("AWS::SecretsManager::SecretTargetAttachment"), props(map[string]any{
			"TargetType": "AWS::RDS::DBInstance",
		}))
	})
	has(t, "redis", func() {
		tp.HasResourceProperties(jsii.String("AWS::ElastiCache::ReplicationGroup"), props(map[string]any{
			"Engine": "redis", "ClusterMode": "disabled", "NumCacheClusters": 2, "AutomaticFailoverEnabled": true,
			"MultiAZEnabled": true, "TransitEncryptionEnabled": true, "AtRestEncryptionEnabled": true,
			"NumNodeGroups": assertions.Match_Absent(),
		}))
	})
}

// TestNetworkPaths: Postgres accepts only the proxy and the hosted rotation of its secrets, the proxy only the Postgres clients'
// group (the functions that use Postgres), Redis only the functions' group; the proxy may
// reach Postgres's port and nothing else; wsconnect and broadcast are not Postgres clients.
func TestNetworkPaths(t *testing.T) {
	s, _, d := synth(t)
	sg := func(c interface{ Node() constructsNode }) string { return logicalID(s, c) }
	type path struct {
		from string
		port any
	}
	want := map[string][]path{ // group → the only ingress it has
		sg(s.Network.Postgres): {
			{sg(s.Network.Proxy), map[string]any{"Fn::GetAtt": []any{logicalID(s, s.Data.Postgres), "Endpoint.Port"}}},
			{sg(s.Network.Rotation), map[string]any{"Fn::GetAtt": []any{logicalID(s, s.Data.Postgres), "Endpoint.Port"}}},
		},
		sg(s.Network.Proxy): {{sg(s.Network.PostgresClients), float64(5432)}},
		sg(s.Network.Redis): {{sg(s.Network.Functions), float64(6379)}},
	}
	got := map[string][]path{}
	for _, r := range d.ofType("AWS::EC2::SecurityGroupIngress") {
		g := refs(r.Properties["GroupId"])[0]
		got[g] = append(got[g], path{refs(r.Properties["SourceSecurityGroupId"])[0], r.Properties["FromPort"]})
		if !reflect.DeepEqual(r.Properties["FromPort"], r.Properties["ToPort"]) {
			t.Errorf("ingress on %s opens a port range %v-%v", g, r.Properties["FromPort"], r.Properties["ToPort"])
		}
	}
	for g, paths := range want {
		sort.Slice(got[g], func(i, j int) bool { return got[g][i].from < got[g][j].from })
		sort.Slice(paths, func(i, j int) bool { return paths[i].from < paths[j].from })
		if !reflect.DeepEqual(got[g], paths) {
			t.Errorf("ingress of %s\n got  %v\n want %v", g, got[g], paths)
		}
	}
	for g := range got {
		if _, ok := want[g]; !ok {
			t.Errorf("unexpected ingress on %s: %v", g, got[g])
		}
	}
	for _, c := range []interface{ Node() constructsNode }{s.Network.Postgres, s.Network.Redis} {
		eg := asList(d.Resources[sg(c)].Properties["SecurityGroupEgress"])
		if len(eg) != 1 || eg[0].(map[string]any)["CidrIp"] != "255.255.255.255/32" {
			t.Errorf("%s may connect out: %v", sg(c), eg)
		}
	}
	for id, r := range d.ofType("AWS::EC2::SecurityGroup") {
		if id != sg(s.Network.Proxy) {
			continue
		}
		if eg := asList(r.Properties["SecurityGroupEgress"]); len(eg) != 0 {
			t.Errorf("the proxy's group has inline egress %v, want only the rule to Postgres", eg)
		}
	}
	var proxyEgress []string
	for _, r := range d.ofType("AWS::EC2::SecurityGroupEgress") {
		if refs(r.Properties["GroupId"])[0] == sg(s.Network.Proxy) {
			proxyEgress = append(proxyEgress, refs(r.Properties["DestinationSecurityGroupId"])[0])
		}
	}
	if !reflect.DeepEqual(proxyEgress, []string{sg(s.Network.Postgres)}) {
		t.Errorf("the proxy reaches %v, want Postgres only", proxyEgress)
	}
	for _, f := range Functions {
		groups := refs(d.Resources[d.functionID(t, f.Name)].Properties["VpcConfig"].(map[string]any)["SecurityGroupIds"])
		if contains(groups, sg(s.Network.PostgresClients)) != f.Postgres {
			t.Errorf("%s: in the Postgres clients' group = %v, want %v", f.Name, !f.Postgres, f.Postgres)
		}
	}
	for _, name := range []string{"wsconnect", "broadcast"} {
		if lookup(name).Postgres {
			t.Errorf("%s must not use Postgres (no secret, no network path)", name)
		}
	}
}

// TestOutputs: the API URLs, the user pool and its client, the Stripe secret and the site are outputs.
func TestOutputs(t *testing.T) {
	_, tp, _ := synth(t)
	for _, name := range []string{"HttpApiUrl", "WebSocketUrl", "WebSocketCallbackUrl", "UserPoolId", "UserPoolClientId",
		"AdminUserPoolId", "AdminUserPoolClientId", "SignInUrl", "AdminSignInUrl", "StripeSecretArn", "StripeWebhookSecretArn", "FulfillQueueUrl", "FulfillDLQUrl", "AlarmTopicArn", "SiteUrl"} {
		t.Run(name, func(t *testing.T) {
			has(t, "output", func() { tp.HasOutput(jsii.String(name), props(map[string]any{"Value": assertions.Match_AnyValue()})) })
		})
	}
}

// synthLocal synthesizes the LocalStack variant (localstack/: `make localstack-deploy`).
func synthLocal(t *testing.T, withAPIs bool) assertions.Template {
	t.Helper()
	synth(t) // the fake packages and jsii are ready
	codeDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(codeDir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var tp assertions.Template
	has(t, "synth", func() {
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
		s := New(app, "LastunitLocal", Props{
			LocalStack: true, LocalStackAPIs: withAPIs,
			Code: func(string) awslambda.Code { return awslambda.Code_FromAsset(jsii.String(codeDir), nil) },
		})
		tp = assertions.Template_FromStack(s.Stack, nil)
	})
	if tp == nil {
		t.FailNow()
	}
	return tp
}

// TestLocalStackVariant: the LocalStack stack keeps the functions, queues, schedules and alarms,
// uses the compose file's Postgres, Redis and stripe-mock instead of VPC, RDS and ElastiCache,
// has the Pro-only Cognito and API Gateway v2 resources only when asked, and never the site
// (CloudFront and the upload's Lambda layer are Pro-only too; the local runner serves the pages).
func TestLocalStackVariant(t *testing.T) {
	tests := []struct {
		name     string
		withAPIs bool
		counts   map[string]int
	}{
		{"community", false, map[string]int{
			"AWS::Lambda::Function": len(Functions) + 1, "AWS::SQS::Queue": 5, "Custom::Trigger": 1, // + the trigger's provider "AWS::Events::Rule": 2,
			"AWS::Lambda::EventSourceMapping": 2, "AWS::CloudWatch::Alarm": 3 + 2*len(Functions) + len(BusinessAlarms),
			"AWS::CloudWatch::Dashboard": 1,
			"AWS::EC2::VPC":              0, "AWS::EC2::NatGateway": 0, "AWS::RDS::DBInstance": 0, "AWS::ElastiCache::ReplicationGroup": 0,
			"AWS::ApiGatewayV2::Api": 0, "AWS::Cognito::UserPool": 0,
			"AWS::S3::Bucket": 0, "AWS::CloudFront::Distribution": 0, "Custom::CDKBucketDeployment": 0,
		}},
		{"pro", true, map[string]int{
			"AWS::Lambda::Function": len(Functions) + 1, "AWS::ApiGatewayV2::Api": 2, "AWS::Cognito::UserPool": 2, "AWS::Cognito::UserPoolDomain": 0, "Custom::Trigger": 1,
			"AWS::RDS::DBInstance": 0, "AWS::ElastiCache::ReplicationGroup": 0,
			"AWS::S3::Bucket": 0, "AWS::CloudFront::Distribution": 0, "Custom::CDKBucketDeployment": 0,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := synthLocal(t, tt.withAPIs)
			for typ, n := range tt.counts {
				has(t, typ, func() { tp.ResourceCountIs(jsii.String(typ), jsii.Number(float64(n))) })
			}
			has(t, "functions outside a VPC", func() {
				tp.AllResourcesProperties(jsii.String("AWS::Lambda::Function"), props(map[string]any{"VpcConfig": assertions.Match_Absent()}))
			})
			for _, f := range Functions {
				if f.Owner {
					continue // no Redis
				}
				has(t, f.Name+" on the compose services", func() {
					tp.HasResourceProperties(jsii.String("AWS::Lambda::Function"), props(map[string]any{
						"FunctionName": "lastunit-" + f.Name,
						"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(props(map[string]any{
							"REDIS_URL": LocalRedisURL, "REDIS_AUTH_SECRET_ARN": assertions.Match_Absent(), "DATABASE_HOST": assertions.Match_Absent(),
						}))},
					}))
				})
			}
			has(t, "no proxy", func() { tp.ResourceCountIs(jsii.String("AWS::RDS::DBProxy"), jsii.Number(0)) })
			has(t, "stripe-mock", func() {
				tp.HasResourceProperties(jsii.String("AWS::Lambda::Function"), props(map[string]any{
					"FunctionName": "lastunit-checkout",
					"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(props(map[string]any{
						"STRIPE_API_BASE": LocalStripeAPIBase,
					}))},
				}))
			})
		})
	}
}
