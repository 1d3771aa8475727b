package stack

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"
)

// dashboardBody is the dashboard's DashboardBody as JSON, its tokens (Ref, Fn::GetAtt) written
// as "<Ref X>" / "<GetAtt X.Attr>".
func dashboardBody(t *testing.T, d cfnTemplate) (name string, body map[string]any) {
	t.Helper()
	dashboards := d.ofType("AWS::CloudWatch::Dashboard")
	if len(dashboards) != 1 {
		t.Fatalf("%d dashboards, want 1", len(dashboards))
	}
	for _, r := range dashboards {
		name, _ = r.Properties["DashboardName"].(string)
		var text strings.Builder
		switch b := r.Properties["DashboardBody"].(type) {
		case string:
			text.WriteString(b)
		case map[string]any:
			join, _ := b["Fn::Join"].([]any)
			if len(join) != 2 {
				t.Fatalf("DashboardBody %v", b)
			}
			for _, p := range asList(join[1]) {
				switch x := p.(type) {
				case string:
					text.WriteString(x)
				case map[string]any:
					if ref, ok := x["Ref"]; ok {
						fmt.Fprintf(&text, "<Ref %v>", ref)
					} else if att, ok := x["Fn::GetAtt"].([]any); ok && len(att) == 2 {
						fmt.Fprintf(&text, "<GetAtt %v.%v>", att[0], att[1])
					} else {
						t.Fatalf("DashboardBody token %v", x)
					}
				}
			}
		}
		if err := json.Unmarshal([]byte(text.String()), &body); err != nil {
			t.Fatalf("DashboardBody is not JSON: %v\n%s", err, text.String())
		}
	}
	return name, body
}

// widgetMetrics is every graph line of the dashboard, by widget title, written as text:
// a SEARCH or math expression as itself, a metric as "namespace metric dim=value ... stat".
func widgetMetrics(t *testing.T, body map[string]any) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, w := range asList(body["widgets"]) {
		w := w.(map[string]any)
		if w["type"] != "metric" {
			continue
		}
		p := w["properties"].(map[string]any)
		title := fmt.Sprint(p["title"])
		for _, m := range asList(p["metrics"]) {
			line := asList(m)
			if len(line) == 0 {
				continue
			}
			opts, _ := line[len(line)-1].(map[string]any)
			if e, ok := opts["expression"].(string); ok {
				out[title] = append(out[title], e)
				continue
			}
			var parts []string
			for i := 0; i+1 < len(line); i++ {
				s := fmt.Sprint(line[i])
				if i >= 2 && i%2 == 0 {
					s += "=" + fmt.Sprint(line[i+1])
					i++
				}
				parts = append(parts, s)
			}
			parts = append(parts, fmt.Sprint(opts["stat"]))
			out[title] = append(out[title], strings.Join(parts, " "))
		}
	}
	return out
}

// TestDashboard: the drop's dashboard draws, for the product picked in its variable and over
// all products, the reserves by outcome, the reserve's p50 and p99 latency, holds into
// payments and the reserve's 5xx, all from the functions' EMF metrics (namespace lastunit,
// per minute); reserves per product; the sweep's three signals; the dead letters; and the
// state of every alarm.
func TestDashboard(t *testing.T) {
	s, _, d := synth(t)
	name, body := dashboardBody(t, d)
	if name != "lastunit-drop" {
		t.Errorf("DashboardName %q, want lastunit-drop", name)
	}
	// The product variable: a drop-down of the ProductIds seen, replacing CHOSEN_PRODUCT.
	vars := asList(body["variables"])
	if len(vars) != 1 {
		t.Fatalf("variables %v, want one", vars)
	}
	want := map[string]any{"type": "pattern", "pattern": "CHOSEN_PRODUCT", "inputType": "select", "id": "product",
		"search": `{lastunit,Service,ProductId} MetricName="ReserveOK"`, "populateFrom": "ProductId", "defaultValue": "__FIRST"}
	for k, v := range want {
		if got := vars[0].(map[string]any)[k]; got != v {
			t.Errorf("variable %s = %v, want %v", k, got, v)
		}
	}

	product := func(metric string) string {
		return `SUM(SEARCH('{lastunit,Service,ProductId} MetricName="` + metric + `" ProductId="CHOSEN_PRODUCT"', 'Sum', 60))`
	}
	all := func(metric string) string {
		return `SUM(SEARCH('{lastunit,Service} MetricName="` + metric + `"', 'Sum', 60))`
	}
	latency := func(stat string) string {
		return `SEARCH('{lastunit,Service,ProductId} MetricName="ReserveLatency" ProductId="CHOSEN_PRODUCT" Service="reserve"', '` + stat + `', 60)`
	}
	queue := func(id string) string {
		return "AWS/SQS ApproximateNumberOfMessagesVisible QueueName=<GetAtt " + logicalID(s, s.Queues.node(id)) + ".QueueName> Maximum"
	}
	wantLines := map[string][]string{
		"Reserves by outcome: CHOSEN_PRODUCT": {product("ReserveOK"), product("OutOfStock"), product("LimitExceeded"),
			product("NotAdmitted"), product("NotOpen"), product("RateLimited")},
		"Reserve latency: CHOSEN_PRODUCT":     {latency("p50"), latency("p99")},
		"Holds into payments: CHOSEN_PRODUCT": {product("Released"), product("Expired"), product("CheckedOut"), product("Paid")},
		"Reserve 5xx: CHOSEN_PRODUCT": {
			`SEARCH('{lastunit,Service,ProductId} MetricName="Reserve5xx" ProductId="CHOSEN_PRODUCT" Service="reserve"', 'Sum', 60)`},
		"Reserves by outcome: all products": {all("ReserveOK"), all("OutOfStock"), all("LimitExceeded"),
			all("NotAdmitted"), all("NotOpen"), all("RateLimited")},
		"Reserve latency: all products":     {"lastunit ReserveLatency Service=reserve p50", "lastunit ReserveLatency Service=reserve p99"},
		"Holds into payments: all products": {all("Released"), all("Expired"), all("CheckedOut"), all("Paid")},
		"Reserve 5xx: all products":         {"lastunit Reserve5xx Service=reserve Sum"},
		"Reserves per product (ReserveOK)":  {`SEARCH('{lastunit,Service,ProductId} MetricName="ReserveOK"', 'Sum', 60)`},
		"The sweep's signals (> 0 raises an alarm)": {"lastunit StaleGates Service=expire Maximum",
			"lastunit RefundsStuck Service=expire Maximum", "lastunit DrawsOverdue Service=expire Maximum"},
		"Dead letters (visible messages)": {queue("FulfillOrderDLQ"), queue("StockUpdatesDLQ"), queue("ScheduleFailures")},
	}
	got := widgetMetrics(t, body)
	for title, lines := range wantLines {
		if strings.Join(got[title], "\n") != strings.Join(lines, "\n") {
			t.Errorf("widget %q draws\n  %s\nwant\n  %s", title, strings.Join(got[title], "\n  "), strings.Join(lines, "\n  "))
		}
	}
	if len(got) != len(wantLines) {
		t.Errorf("%d graph widgets, want %d: %v", len(got), len(wantLines), got)
	}
	// Every metric the functions emit is on it.
	text, _ := json.Marshal(got)
	for _, m := range []string{"ReserveOK", "OutOfStock", "LimitExceeded", "NotAdmitted", "NotOpen", "RateLimited", "Released",
		"Expired", "CheckedOut", "Paid", "ReserveLatency", "Reserve5xx", "StaleGates", "RefundsStuck", "DrawsOverdue"} {
		if !strings.Contains(string(text), m) {
			t.Errorf("metric %s is not on the dashboard", m)
		}
	}

	// The alarm widget shows every alarm of the stack.
	var shown []string
	for _, w := range asList(body["widgets"]) {
		if w := w.(map[string]any); w["type"] == "alarm" {
			for _, a := range asList(w["properties"].(map[string]any)["alarms"]) {
				shown = append(shown, fmt.Sprint(a))
			}
		}
	}
	alarms := d.ofType("AWS::CloudWatch::Alarm")
	if len(shown) != len(alarms) {
		t.Errorf("the alarm widget shows %d alarms, the stack has %d", len(shown), len(alarms))
	}
	for id := range alarms {
		if !contains(shown, "<GetAtt "+id+".Arn>") {
			t.Errorf("alarm %s is not on the dashboard", id)
		}
	}
}

// node names a queue of the stack by its construct id, for logicalID.
func (q *Queues) node(id string) interface{ Node() constructsNode } {
	for _, c := range []interface{ Node() constructsNode }{q.FulfillDLQ, q.StockUpdatesDLQ, q.ScheduleFailures} {
		if *c.Node().Id() == id {
			return c
		}
	}
	panic("no queue " + id)
}

// TestBusinessAlarms: the signals an operator must act on alarm on the first minute above 0,
// to the alarm topic (and back to OK): gates found stale by the sweep, refunds stuck for more
// than an hour, draws not run five minutes after draw_at (the sweep's gauges, Maximum), and
// the reserve's 5xx (Sum), each on the EMF metric over all products ([Service]).
func TestBusinessAlarms(t *testing.T) {
	s, tp, _ := synth(t)
	topic := map[string]any{"Ref": logicalID(s, s.AlarmTopic)}
	tests := []struct{ metric, service, stat string }{
		{"StaleGates", "expire", "Maximum"},
		{"RefundsStuck", "expire", "Maximum"},
		{"DrawsOverdue", "expire", "Maximum"},
		{"Reserve5xx", "reserve", "Sum"},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			has(t, "alarm", func() {
				tp.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), props(map[string]any{
					"Namespace": "lastunit", "MetricName": tt.metric, "Statistic": tt.stat, "Period": 60,
					"Dimensions":         []any{map[string]any{"Name": "Service", "Value": tt.service}},
					"ComparisonOperator": "GreaterThanThreshold", "Threshold": 0, "EvaluationPeriods": 1,
					"TreatMissingData": "notBreaching",
					"AlarmActions":     []any{topic}, "OKActions": []any{topic},
				}))
			})
		})
	}
	// The dead letters keep their alarms (TestAlarms): no second alarm on the same queue.
	has(t, "one alarm per dead-letter queue", func() {
		tp.ResourcePropertiesCountIs(jsii.String("AWS::CloudWatch::Alarm"), props(map[string]any{
			"MetricName": "ApproximateNumberOfMessagesVisible",
		}), jsii.Number(3))
	})
}

// synthContext synthesizes the default stack with extra CDK context (as `-c key=value` gives it).
func synthContext(t *testing.T, context map[string]any) (*Stack, cfnTemplate) {
	t.Helper()
	synth(t) // jsii is up
	codeDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(codeDir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var s *Stack
	var doc cfnTemplate
	has(t, "synth", func() {
		app := awscdk.NewApp(&awscdk.AppProps{Context: &context, Outdir: jsii.String(t.TempDir())})
		s = New(app, "LastunitContext", Props{WebDir: "../../web",
			Code: func(string) awslambda.Code { return awslambda.Code_FromAsset(jsii.String(codeDir), nil) }})
		b, err := json.Marshal(assertions.Template_FromStack(s.Stack, nil).ToJSON())
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
	})
	if s == nil {
		t.FailNow()
	}
	return s, doc
}

// xrayGrants lists every policy statement in d that allows an X-Ray action.
func xrayGrants(d cfnTemplate) []string {
	var out []string
	for id, p := range d.ofType("AWS::IAM::Policy") {
		for _, st := range asList(p.Properties["PolicyDocument"].(map[string]any)["Statement"]) {
			for _, a := range strs(st.(map[string]any)["Action"]) {
				if strings.HasPrefix(fmt.Sprint(a), "xray:") {
					out = append(out, id+" "+fmt.Sprint(a))
				}
			}
		}
	}
	return out
}

// TestTracing: X-Ray active tracing is on for the ten functions and the Redis rotation by
// default, with the X-Ray grants; context tracing=false (a string from `-c`, or false in
// cdk.json) turns it off everywhere and takes the grants away; a value that is neither is
// refused.
func TestTracing(t *testing.T) {
	ours := map[string]bool{"lastunit-rotate-redis": true}
	for _, f := range Functions {
		ours["lastunit-"+f.Name] = true
	}
	t.Run("default", func(t *testing.T) {
		_, _, d := synth(t)
		seen := 0
		for id, r := range d.ofType("AWS::Lambda::Function") {
			if !ours[fmt.Sprint(r.Properties["FunctionName"])] {
				continue
			}
			seen++
			if mode, _ := r.Properties["TracingConfig"].(map[string]any); mode["Mode"] != "Active" {
				t.Errorf("%s: TracingConfig %v, want Active", id, r.Properties["TracingConfig"])
			}
		}
		if seen != len(Functions)+1 {
			t.Errorf("%d traced functions found, want %d", seen, len(Functions)+1)
		}
		if n := len(xrayGrants(d)); n < 2*(len(Functions)+1) {
			t.Errorf("%d X-Ray grants, want PutTraceSegments and PutTelemetryRecords for each of %d functions", n, len(Functions)+1)
		}
	})
	for _, off := range []any{"false", false} {
		t.Run(fmt.Sprintf("tracing=%#v", off), func(t *testing.T) {
			_, d := synthContext(t, map[string]any{TracingContext: off})
			seen := 0
			for id, r := range d.ofType("AWS::Lambda::Function") {
				if !ours[fmt.Sprint(r.Properties["FunctionName"])] {
					continue
				}
				seen++
				if tc, ok := r.Properties["TracingConfig"]; ok {
					t.Errorf("%s: TracingConfig %v, want none", id, tc)
				}
			}
			if seen != len(Functions)+1 {
				t.Errorf("%d functions found, want %d", seen, len(Functions)+1)
			}
			if g := xrayGrants(d); len(g) != 0 {
				t.Errorf("X-Ray grants without tracing: %v", g)
			}
		})
	}
	t.Run("tracing=maybe", func(t *testing.T) {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "tracing") {
				t.Errorf("tracing=maybe: recovered %v, want a panic naming the flag", r)
			}
		}()
		app := awscdk.NewApp(&awscdk.AppProps{Context: &map[string]any{TracingContext: "maybe"}, Outdir: jsii.String(t.TempDir())})
		New(app, "LastunitMaybe", Props{WebDir: "../../web", Code: func(string) awslambda.Code {
			return awslambda.Code_FromInline(jsii.String("x"))
		}})
	})
}

// stringConsts is the string constants of the Go files matching glob whose names start with
// prefix, by name.
func stringConsts(t *testing.T, glob, prefix string) map[string]string {
	t.Helper()
	paths, _ := filepath.Glob(glob)
	out := map[string]string{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i >= len(vs.Values) || !strings.HasPrefix(n.Name, prefix) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						out[n.Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
		}
	}
	return out
}

// TestMetricsMatchTheFunctions: the dashboard and the alarms read exactly the metrics the
// functions write (shared/shop's Figure* names, shared/metric's namespace), so renaming one
// on either side fails here rather than leaving an empty graph or an alarm that never fires.
func TestMetricsMatchTheFunctions(t *testing.T) {
	emitted := map[string]bool{}
	for _, v := range stringConsts(t, "../../shared/shop/*.go", "Figure") {
		emitted[v] = true
	}
	if len(emitted) == 0 {
		t.Fatal("no Figure* constants in shared/shop")
	}
	read := map[string]bool{MetricReserveLatency: true, MetricReserve5xx: true}
	for _, list := range [][]string{ReserveOutcomes, HoldOutcomes, SweepSignals} {
		for _, m := range list {
			read[m] = true
		}
	}
	if got, want := sorted(read), sorted(emitted); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the stack reads %v, the functions write %v", got, want)
	}
	if ns := stringConsts(t, "../../shared/metric/*.go", "Namespace")["Namespace"]; ns != MetricNamespace {
		t.Errorf("shared/metric writes namespace %q, the stack reads %q", ns, MetricNamespace)
	}
	functions := map[string]bool{}
	for _, f := range Functions {
		functions[f.Name] = true
	}
	for _, b := range BusinessAlarms {
		if !functions[b.Service] {
			t.Errorf("alarm %s reads Service=%s, which is no function", b.ID, b.Service)
		}
	}
}
