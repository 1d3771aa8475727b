package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"
)

// The variant stack: what an operator deploys for a drop with every knob turned: a larger
// instance, an override, throttles, a pre-warm window, the WAF, no Stripe publishable key.
var (
	variantOnce  sync.Once
	variantStack *Stack
	variantTmpl  assertions.Template
	variantDoc   cfnTemplate
	variantErr   error

	prewarmFrom  = time.Date(2026, 12, 1, 17, 45, 0, 0, time.UTC)
	prewarmUntil = time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC)
)

var variantProps = Props{
	WebDir: "../../web", DBInstanceClass: "db.t4g.medium", Concurrency: map[string]int{"reserve": 150},
	APIRate: 2500, APIBurst: 4000, WSRate: 800, WSBurst: 1600,
	Prewarm: map[string]int{"reserve": 50, "checkout": 20}, PrewarmFrom: prewarmFrom, PrewarmUntil: prewarmUntil,
	WAF: true, WAFRateLimit: 2000, WAFWriteRateLimit: 300,
}

// newTestStack synthesizes a stack of props (with a stand-in package for every function);
// a panic in New is returned as an error.
func newTestStack(t *testing.T, props Props) (s *Stack, tp assertions.Template, d cfnTemplate, err error) {
	t.Helper()
	synth(t) // jsii is up
	codeDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(codeDir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	props.Code = func(string) awslambda.Code { return awslambda.Code_FromAsset(jsii.String(codeDir), nil) }
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	s = New(app, "LastunitVariant", props)
	tp = assertions.Template_FromStack(s.Stack, nil)
	b, err := json.Marshal(tp.ToJSON())
	if err != nil {
		return nil, nil, d, err
	}
	return s, tp, d, json.Unmarshal(b, &d)
}

func variant(t *testing.T) (*Stack, assertions.Template, cfnTemplate) {
	t.Helper()
	variantOnce.Do(func() {
		variantStack, variantTmpl, variantDoc, variantErr = newTestStack(t, variantProps)
	})
	if variantErr != nil {
		t.Fatalf("variant synth: %v", variantErr)
	}
	return variantStack, variantTmpl, variantDoc
}

// reaches says whether resource from depends on resource to, directly or through others
// (DependsOn, Ref, Fn::GetAtt): CloudFormation creates and updates to first.
func (d cfnTemplate) reaches(from, to string) bool {
	seen := map[string]bool{}
	stack := []string{from}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		r := d.Resources[id]
		next := refs(r.Properties)
		for _, dep := range strs(r.DependsOn) {
			if s, ok := dep.(string); ok {
				next = append(next, s)
			}
		}
		for _, n := range next {
			if n == to {
				return true
			}
			stack = append(stack, n)
		}
	}
	return false
}

// dependsDirectly says whether from lists to in its DependsOn.
func (d cfnTemplate) dependsDirectly(from, to string) bool {
	for _, dep := range strs(d.Resources[from].DependsOn) {
		if dep == to {
			return true
		}
	}
	return false
}

func (d cfnTemplate) one(t *testing.T, typ string) (string, cfnResource) {
	t.Helper()
	all := d.ofType(typ)
	if len(all) != 1 {
		t.Fatalf("%d resources of type %s, want 1", len(all), typ)
	}
	for id, r := range all {
		return id, r
	}
	return "", cfnResource{}
}

// checkBudget reads the template: for every function that uses Postgres, its reserved
// concurrency × its pool size (DB_MAX_CONNS; the migrate handler opens one connection), summed,
// must fit in the proxy's share of the instance class's max_connections. It returns the sum
// and the budget.
func checkBudget(t *testing.T, d cfnTemplate) (demand, budget int) {
	t.Helper()
	_, db := d.one(t, "AWS::RDS::DBInstance")
	class := instanceClass(strings.TrimPrefix(fmt.Sprint(db.Properties["DBInstanceClass"]), "db."))
	_, tg := d.one(t, "AWS::RDS::DBProxyTargetGroup")
	pct := int(tg.Properties["ConnectionPoolConfigurationInfo"].(map[string]any)["MaxConnectionsPercent"].(float64))
	budget = class.MaxConnections * pct / 100
	for _, f := range Functions {
		r := d.Resources[d.functionID(t, f.Name)].Properties
		rc, reserved := r["ReservedConcurrentExecutions"].(float64)
		if !f.Postgres {
			if reserved {
				t.Errorf("%s uses no Postgres but reserves %v", f.Name, rc)
			}
			continue
		}
		if !reserved || rc < 1 {
			t.Errorf("%s uses Postgres without reserved concurrency: nothing bounds its connections", f.Name)
			continue
		}
		conns := f.DBMaxConns // migrate: the handler's one connection (shared/handler/migrate.go)
		if !f.Owner {
			v, _ := r["Environment"].(map[string]any)["Variables"].(map[string]any)["DB_MAX_CONNS"].(string)
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Errorf("%s: DB_MAX_CONNS %q", f.Name, v)
			}
			conns = n
		}
		demand += int(rc) * conns
		t.Logf("  %-9s %4d × %d = %4d", f.Name, int(rc), conns, int(rc)*conns)
	}
	t.Logf("db.%s: max_connections %d × %d%% = %d; demand %d", class.Name, class.MaxConnections, pct, budget, demand)
	if demand > budget {
		t.Errorf("the functions may ask for %d connections, the proxy has %d", demand, budget)
	}
	return demand, budget
}

// TestConnectionBudget: in the default stack and in the drop variant (a larger class and an
// override), Σ reserved concurrency × pool size over the Postgres functions fits the proxy's
// share of max_connections; the fulfill queue's consumers fit its reserved concurrency.
func TestConnectionBudget(t *testing.T) {
	_, _, d := synth(t)
	if demand, budget := checkBudget(t, d); demand < budget*3/4 {
		t.Errorf("the defaults use %d of %d connections: most of the budget is idle", demand, budget)
	}
	_, _, v := variant(t)
	checkBudget(t, v)
	if rc := v.Resources[v.functionID(t, "reserve")].Properties["ReservedConcurrentExecutions"]; rc != float64(150) {
		t.Errorf("variant reserve concurrency %v, want the override 150", rc)
	}
	for _, esm := range d.ofType("AWS::Lambda::EventSourceMapping") {
		if refs(esm.Properties["FunctionName"])[0] != d.functionID(t, "fulfill") {
			continue
		}
		max := esm.Properties["ScalingConfig"].(map[string]any)["MaximumConcurrency"].(float64)
		rc := d.Resources[d.functionID(t, "fulfill")].Properties["ReservedConcurrentExecutions"].(float64)
		if max > rc {
			t.Errorf("fulfill's queue may run %v at once, its reserved concurrency is %v", max, rc)
		}
	}
}

// TestBudgetTable: every supported class gets a budget that fits with room for a sale, and
// an override that does not fit, an unknown class or an unreserved Postgres function is
// refused at synth.
func TestBudgetTable(t *testing.T) {
	for _, c := range InstanceClasses {
		p := Props{DBInstanceClass: c.Name}
		p.defaults()
		b := NewBudget(p)
		for _, l := range b.Lines() {
			t.Log(l)
		}
		if b.Demand > b.ProxyConnections {
			t.Errorf("%s: %d > %d", c.Name, b.Demand, b.ProxyConnections)
		}
		reserved := 0
		for _, n := range b.Concurrency {
			reserved += n
		}
		if reserved > p.AccountConcurrency-100 {
			t.Errorf("%s: %d reserved, the account keeps fewer than 100 unreserved", c.Name, reserved)
		}
		if b.Concurrency["reserve"] < 10 {
			t.Errorf("%s: reserve gets %d environments", c.Name, b.Concurrency["reserve"])
		}
	}
	for _, tt := range []struct {
		name string
		p    Props
		want string
	}{
		{"over budget", Props{Concurrency: map[string]int{"reserve": 100}}, "does not fit"},
		{"unknown class", Props{DBInstanceClass: "t2.nano"}, "use one of"},
		{"unreserved Postgres function", Props{Concurrency: map[string]int{"checkout": 0}}, "needs reserved concurrency"},
		{"own max_connections", Props{DBMaxConnections: 10}, "does not fit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			p.defaults()
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), tt.want) {
					t.Errorf("NewBudget: %v, want a panic about %q", r, tt.want)
				}
			}()
			NewBudget(p)
		})
	}
}

// TestProxy: the RDS Proxy targets the instance, requires TLS, authenticates with the two
// secrets (SCRAM, no IAM auth), borrows within the functions' timeouts; every function that
// uses Postgres connects to it (DATABASE_HOST) with the application role's secret, except
// the migrate function, which alone uses the master secret.
func TestProxy(t *testing.T) {
	s, tp, d := synth(t)
	proxy := logicalID(s, s.Data.Proxy)
	auth := func(secret string) any {
		return map[string]any{"AuthScheme": "SECRETS", "IAMAuth": "DISABLED", "ClientPasswordAuthType": "POSTGRES_SCRAM_SHA_256",
			"SecretArn": map[string]any{"Ref": secret}}
	}
	has(t, "proxy", func() {
		tp.HasResourceProperties(jsii.String("AWS::RDS::DBProxy"), props(map[string]any{
			"EngineFamily": "POSTGRESQL", "RequireTLS": true,
			"Auth": []any{auth(logicalID(s, s.Data.AppSecret)), auth(logicalID(s, s.Data.DBSecret))},
		}))
	})
	has(t, "target group", func() {
		tp.HasResourceProperties(jsii.String("AWS::RDS::DBProxyTargetGroup"), props(map[string]any{
			"Tags":                  assertions.Match_Absent(), // CloudFormation refuses them here
			"DBProxyName":           map[string]any{"Ref": proxy},
			"DBInstanceIdentifiers": []any{map[string]any{"Ref": logicalID(s, s.Data.Postgres)}},
			"ConnectionPoolConfigurationInfo": assertions.Match_ObjectLike(props(map[string]any{
				"MaxConnectionsPercent": DefaultProxyMaxConnectionsPercent, "ConnectionBorrowTimeout": ProxyBorrowTimeoutSeconds,
			})),
		}))
	})
	for _, f := range Functions {
		if f.TimeoutSeconds <= ProxyBorrowTimeoutSeconds && f.Postgres {
			t.Errorf("%s times out (%d s) before a borrow does (%d s)", f.Name, f.TimeoutSeconds, ProxyBorrowTimeoutSeconds)
		}
		vars := d.Resources[d.functionID(t, f.Name)].Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
		if !f.Postgres {
			if _, ok := vars["DATABASE_SECRET_ARN"]; ok {
				t.Errorf("%s uses no Postgres but has a database secret", f.Name)
			}
			continue
		}
		if host := refs(vars["DATABASE_HOST"]); len(host) != 1 || host[0] != proxy {
			t.Errorf("%s: DATABASE_HOST %v, want the proxy's endpoint", f.Name, vars["DATABASE_HOST"])
		}
		if vars["DATABASE_SSLMODE"] != "verify-full" {
			t.Errorf("%s: DATABASE_SSLMODE %v, want verify-full (the proxy's certificate is checked)", f.Name, vars["DATABASE_SSLMODE"])
		}
		want := s.Data.AppSecret
		if f.Owner {
			want = s.Data.DBSecret
		}
		if got := refs(vars["DATABASE_SECRET_ARN"]); len(got) != 1 || got[0] != logicalID(s, want) {
			t.Errorf("%s: DATABASE_SECRET_ARN %v, want %s", f.Name, got, logicalID(s, want))
		}
	}
	has(t, "app role secret", func() {
		tp.HasResourceProperties(jsii.String("AWS::SecretsManager::Secret"), props(map[string]any{
			"Name": "lastunit/postgres-app",
			"GenerateSecretString": assertions.Match_ObjectLike(props(map[string]any{
				"SecretStringTemplate": `{"username":"` + AppRoleName + `"}`, "GenerateStringKey": "password",
			})),
		}))
	})
}

// TestMigrateTrigger: a trigger invokes the migrate function synchronously once per change of
// its code, after Postgres and the proxy (with its target) exist, and before every other
// Postgres function, the live aliases, the HTTP API's routes and stage and the WebSocket API.
func TestMigrateTrigger(t *testing.T) {
	s, tp, d := synth(t)
	trigger, tr := d.one(t, "Custom::Trigger")
	migrate := d.functionID(t, "migrate")
	if !d.reaches(trigger, migrate) {
		t.Fatalf("the trigger does not invoke the migrate function: %v", tr.Properties)
	}
	has(t, "synchronous", func() {
		tp.HasResourceProperties(jsii.String("Custom::Trigger"), props(map[string]any{"InvocationType": "RequestResponse"}))
	})
	for _, after := range []string{logicalID(s, s.Data.Postgres), logicalID(s, s.Data.Proxy)} {
		if !d.reaches(trigger, after) {
			t.Errorf("the trigger may run before %s exists", after)
		}
	}
	for id := range d.ofType("AWS::RDS::DBProxyTargetGroup") {
		if !d.reaches(trigger, id) {
			t.Errorf("the trigger may run before the proxy's target (%s) is registered", id)
		}
	}
	var before []string
	for _, f := range Functions {
		if f.Postgres && !f.Owner {
			before = append(before, d.functionID(t, f.Name))
		}
	}
	for _, a := range s.Aliases {
		before = append(before, logicalID(s, a))
	}
	for _, typ := range []string{"AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Stage", "AWS::ApiGatewayV2::Api"} {
		for id := range d.ofType(typ) {
			before = append(before, id)
		}
	}
	for _, id := range before {
		if !d.dependsDirectly(id, trigger) {
			t.Errorf("%s (%s) does not wait for the migrations", id, d.Resources[id].Type)
		}
	}
	if d.reaches(trigger, d.functionID(t, "reserve")) {
		t.Error("the trigger waits for the reserve function: a cycle in waiting")
	}
}

// TestThrottles: the stages' throttles are the defaults, and context overrides them.
func TestThrottles(t *testing.T) {
	check := func(t *testing.T, tp assertions.Template, s *Stack, api interface{ Node() constructsNode }, rate, burst int) {
		has(t, "stage throttle", func() {
			tp.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), props(map[string]any{
				"ApiId": map[string]any{"Ref": logicalID(s, api)},
				"DefaultRouteSettings": assertions.Match_ObjectLike(props(map[string]any{
					"ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst,
				})),
			}))
		})
	}
	s, tp, _ := synth(t)
	check(t, tp, s, s.APIs.HTTP, DefaultAPIRate, DefaultAPIBurst)
	check(t, tp, s, s.APIs.WebSocket, DefaultWSRate, DefaultWSBurst)
	vs, vtp, _ := variant(t)
	check(t, vtp, vs, vs.APIs.HTTP, 2500, 4000)
	check(t, vtp, vs, vs.APIs.WebSocket, 800, 1600)
}

// TestPrewarm: reserve and checkout are invoked through their live alias; without a window
// there is no provisioned concurrency; with one, each alias gets a scalable target of at most
// N (≤ its reserved concurrency) and two scheduled actions: N at the start, 0 at the end.
func TestPrewarm(t *testing.T) {
	s, tp, d := synth(t)
	has(t, "no schedule by default", func() {
		tp.ResourceCountIs(jsii.String("AWS::ApplicationAutoScaling::ScalableTarget"), jsii.Number(0))
	})
	for _, name := range Prewarmable {
		has(t, name+" alias", func() {
			tp.HasResourceProperties(jsii.String("AWS::Lambda::Alias"), props(map[string]any{
				"Name": LiveAlias, "FunctionName": map[string]any{"Ref": d.functionID(t, name)},
				"ProvisionedConcurrencyConfig": assertions.Match_Absent(),
			}))
		})
		if _, ok := s.Aliases[name]; !ok {
			t.Errorf("%s has no live alias", name)
		}
	}
	vs, vtp, vd := variant(t)
	at := func(tm time.Time) string { return "at(" + tm.UTC().Format("2006-01-02T15:04:05") + ")" }
	for name, n := range variantProps.Prewarm {
		rc := vd.Resources[vd.functionID(t, name)].Properties["ReservedConcurrentExecutions"].(float64)
		if float64(n) > rc {
			t.Errorf("%s: pre-warms %d, reserves %v", name, n, rc)
		}
		has(t, name+" prewarm", func() {
			vtp.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalableTarget"), props(map[string]any{
				"ServiceNamespace": "lambda", "ScalableDimension": "lambda:function:ProvisionedConcurrency",
				"ResourceId": map[string]any{"Fn::Join": []any{"", []any{
					"function:", map[string]any{"Ref": logicalID(vs, vs.Functions[name])}, ":" + LiveAlias}}},
				"MinCapacity": 0, "MaxCapacity": n,
				"ScheduledActions": assertions.Match_ArrayWith(&[]any{
					assertions.Match_ObjectLike(props(map[string]any{"Schedule": at(prewarmFrom),
						"ScalableTargetAction": map[string]any{"MinCapacity": n, "MaxCapacity": n}})),
					assertions.Match_ObjectLike(props(map[string]any{"Schedule": at(prewarmUntil),
						"ScalableTargetAction": map[string]any{"MinCapacity": 0, "MaxCapacity": 0}})),
				}),
			}))
		})
	}
	for _, tt := range []struct {
		name string
		p    Props
		want string
	}{
		{"more than reserved", Props{Prewarm: map[string]int{"reserve": 10000}, PrewarmFrom: prewarmFrom, PrewarmUntil: prewarmUntil}, "reserved concurrency"},
		{"no window", Props{Prewarm: map[string]int{"reserve": 5}}, "PrewarmFrom before PrewarmUntil"},
		{"not prewarmable", Props{Prewarm: map[string]int{"janitor": 1}, PrewarmFrom: prewarmFrom, PrewarmUntil: prewarmUntil}, "only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.WebDir = "../../web"
			if _, _, _, err := newTestStack(t, tt.p); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want a refusal about %q", err, tt.want)
			}
		})
	}
}

// TestParseCounts: the concurrency and prewarm context.
func TestParseCounts(t *testing.T) {
	got, err := ParseCounts("reserve=40, checkout=20")
	if err != nil || got["reserve"] != 40 || got["checkout"] != 20 || len(got) != 2 {
		t.Errorf("got %v, %v", got, err)
	}
	got, err = ParseCounts("15", Prewarmable...)
	if err != nil || got["reserve"] != 15 || got["checkout"] != 15 {
		t.Errorf("bare count: %v, %v", got, err)
	}
	for _, bad := range []string{"reserve=x", "nosuch=3", "reserve=3x", "=3"} {
		if _, err := ParseCounts(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
