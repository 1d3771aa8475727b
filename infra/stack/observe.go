package stack

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/jsii-runtime-go"
)

// The drop in CloudWatch (docs/cloudwatch.md): the functions write their figures as Embedded
// Metric Format lines on stdout, which CloudWatch Logs turns into metrics of the namespace
// MetricNamespace, each under the dimension sets [Service] and [Service, ProductId] (Service is
// the function's name), the sweep's signals (StaleGates, RefundsStuck, DrawsOverdue) under
// [Service] only. The stack draws them on one dashboard and raises the business alarms an
// operator must act on.

// MetricNamespace is the namespace of the functions' EMF metrics.
const MetricNamespace = "lastunit"

// The dimensions of the EMF metrics.
const (
	DimService = "Service"
	DimProduct = "ProductId"
)

// Metric names the functions emit (all counts but ReserveLatency, in milliseconds).
const (
	MetricReserveOK      = "ReserveOK"
	MetricOutOfStock     = "OutOfStock"
	MetricLimitExceeded  = "LimitExceeded"
	MetricNotAdmitted    = "NotAdmitted"
	MetricNotOpen        = "NotOpen"
	MetricRateLimited    = "RateLimited"
	MetricReleased       = "Released"
	MetricExpired        = "Expired"
	MetricCheckedOut     = "CheckedOut"
	MetricPaid           = "Paid"
	MetricReserveLatency = "ReserveLatency"
	MetricReserve5xx     = "Reserve5xx"
	MetricStaleGates     = "StaleGates"
	MetricRefundsStuck   = "RefundsStuck"
	MetricDrawsOverdue   = "DrawsOverdue"
)

// ReserveOutcomes are the reserve's answers, one count each: the dashboard stacks them.
var ReserveOutcomes = []string{MetricReserveOK, MetricOutOfStock, MetricLimitExceeded, MetricNotAdmitted, MetricNotOpen, MetricRateLimited}

// HoldOutcomes are what becomes of holds: released, expired, checked out, paid.
var HoldOutcomes = []string{MetricReleased, MetricExpired, MetricCheckedOut, MetricPaid}

// SweepSignals are the expire sweep's counts (Service=expire, no ProductId).
var SweepSignals = []string{MetricStaleGates, MetricRefundsStuck, MetricDrawsOverdue}

// ProductPattern is the text the dashboard's product variable replaces: every per-product
// search names ProductId="CHOSEN_PRODUCT", and the variable (a drop-down of the ProductIds
// CloudWatch has seen) puts the chosen id in its place.
const ProductPattern = "CHOSEN_PRODUCT"

// TracingContext is the CDK context key that turns X-Ray off: `-c tracing=false` (default
// true: active tracing on every function).
const TracingContext = "tracing"

// tracing says whether the functions are traced by X-Ray: on unless the context says
// "false" (a string from `-c`, or a boolean in cdk.json).
func (s *Stack) tracing() awslambda.Tracing {
	switch v := s.Stack.Node().TryGetContext(jsii.String(TracingContext)).(type) {
	case bool:
		if !v {
			return awslambda.Tracing_DISABLED
		}
	case string:
		switch strings.ToLower(v) {
		case "false", "off", "0":
			return awslambda.Tracing_DISABLED
		case "", "true", "on", "1", "active":
		default:
			panic(fmt.Sprintf("context %s=%q: use true or false", TracingContext, v))
		}
	}
	return awslambda.Tracing_ACTIVE
}

// BusinessAlarm is an alarm on one of the functions' own metrics: Metric of Service, its
// Statistic over one minute, above 0.
type BusinessAlarm struct {
	// ID is the construct id ("StaleGates" → StaleGatesAlarm).
	ID string
	// Service and Metric name the metric (Service's dimension set only, all products).
	Service, Metric string
	// Statistic is Sum for events, Maximum for the sweep's gauges.
	Statistic string
	// Description says what happened and what to do.
	Description string
}

// BusinessAlarms are the signals an operator must act on during and after a drop. Each fires
// on the first minute above 0 and notifies the alarm topic (and again when it is back to OK).
var BusinessAlarms = []BusinessAlarm{
	{"StaleGates", "expire", MetricStaleGates, "Maximum",
		"The sweep found Redis gates behind Postgres (a Redis failover or flush) and rebuilt them: check Redis's events, " +
			"and that the products' available units look right (GET /admin/products)."},
	{"RefundsStuck", "expire", MetricRefundsStuck, "Maximum",
		"Refunds asked for more than an hour ago whose orders are still paid: look at those orders (GET /admin/orders?status=paid) and at the refunds in Stripe's dashboard."},
	{"DrawsOverdue", "expire", MetricDrawsOverdue, "Maximum",
		"A draw has not run five minutes after its draw_at: check the expire function's errors and logs, then the draw (docs/draws.md)."},
	{"Reserve5xx", "reserve", MetricReserve5xx, "Sum",
		"The reserve answered 5xx (Postgres, the proxy or Redis unavailable, or the pool exhausted): read the reserve function's logs and the proxy's metrics."},
}

// newBusinessAlarms adds BusinessAlarms through alarm (newAlarms' helper).
func (s *Stack) newBusinessAlarms(alarm func(id, desc string, metric awscloudwatch.IMetric) awscloudwatch.Alarm) {
	for _, b := range BusinessAlarms {
		alarm(b.ID, "lastunit: "+b.Description, s.serviceMetric(b.Service, b.Metric, b.Statistic))
	}
}

// serviceMetric is the metric name of service over all products ([Service]), per minute.
func (s *Stack) serviceMetric(service, name, statistic string) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace: jsii.String(MetricNamespace), MetricName: jsii.String(name),
		DimensionsMap: &map[string]*string{DimService: jsii.String(service)},
		Statistic:     jsii.String(statistic), Period: awscdk.Duration_Minutes(jsii.Number(1)),
	})
}

// total is name summed over every Service that emits it, for the chosen product (product) or
// all products: SUM(SEARCH(...)) over the exact dimension set.
func total(name string, product bool) awscloudwatch.IMetric {
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String("SUM(" + search(name, "", product, "Sum") + ")"),
		Label:      jsii.String(name), Period: awscdk.Duration_Minutes(jsii.Number(1)),
	})
}

// search is a SEARCH expression for name (of service, if not ""), per minute, for the chosen
// product (product: the {Service,ProductId} set, ProductId=ProductPattern) or over all
// products (the {Service} set).
func search(name, service string, product bool, statistic string) string {
	schema, terms := "{"+MetricNamespace+","+DimService+"}", `MetricName="`+name+`"`
	if product {
		schema = "{" + MetricNamespace + "," + DimService + "," + DimProduct + "}"
		terms += ` ` + DimProduct + `="` + ProductPattern + `"`
	}
	if service != "" {
		terms += ` ` + DimService + `="` + service + `"`
	}
	return "SEARCH('" + schema + " " + terms + "', '" + statistic + "', 60)"
}

// searched is one SEARCH expression as a graph line.
func searched(label, name, service string, product bool, statistic string) awscloudwatch.IMetric {
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String(search(name, service, product, statistic)),
		Label:      jsii.String(label), Period: awscdk.Duration_Minutes(jsii.Number(1)),
	})
}

// newDashboard draws a drop: the chosen product's reserves by outcome, the reserve's latency,
// holds into payments and the reserve's 5xx; the same over all products with reserves per
// product; the sweep's signals and the dead letters; and every alarm's state.
func (s *Stack) newDashboard() {
	graph := func(title string, width float64, left []awscloudwatch.IMetric, stacked bool, unit string) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Width: jsii.Number(width), Height: jsii.Number(6),
			Left: &left, Stacked: jsii.Bool(stacked), Period: awscdk.Duration_Minutes(jsii.Number(1)),
			LeftYAxis: &awscloudwatch.YAxisProps{Label: jsii.String(unit), ShowUnits: jsii.Bool(false), Min: jsii.Number(0)},
		})
	}
	counts := func(names []string, product bool) []awscloudwatch.IMetric {
		var out []awscloudwatch.IMetric
		for _, n := range names {
			out = append(out, total(n, product))
		}
		return out
	}
	latency := func(product bool) []awscloudwatch.IMetric {
		return []awscloudwatch.IMetric{
			searched("p50", MetricReserveLatency, "reserve", product, "p50"),
			searched("p99", MetricReserveLatency, "reserve", product, "p99"),
		}
	}
	perProduct := []awscloudwatch.IWidget{
		graph("Reserves by outcome: "+ProductPattern, 8, counts(ReserveOutcomes, true), true, "answers / min"),
		graph("Reserve latency: "+ProductPattern, 5, latency(true), false, "ms"),
		graph("Holds into payments: "+ProductPattern, 6, counts(HoldOutcomes, true), false, "events / min"),
		graph("Reserve 5xx: "+ProductPattern, 5, []awscloudwatch.IMetric{
			searched(MetricReserve5xx, MetricReserve5xx, "reserve", true, "Sum")}, false, "answers / min"),
	}
	var sweep []awscloudwatch.IMetric
	for _, n := range SweepSignals {
		sweep = append(sweep, s.serviceMetric("expire", n, "Maximum"))
	}
	var dlq []awscloudwatch.IMetric
	for _, q := range []struct {
		label string
		queue interface {
			MetricApproximateNumberOfMessagesVisible(*awscloudwatch.MetricOptions) awscloudwatch.Metric
		}
	}{{"fulfill-order DLQ", s.Queues.FulfillDLQ}, {"stock-updates DLQ", s.Queues.StockUpdatesDLQ}, {"schedule failures", s.Queues.ScheduleFailures}} {
		dlq = append(dlq, q.queue.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
			Period: awscdk.Duration_Minutes(jsii.Number(1)), Statistic: jsii.String("Maximum"), Label: jsii.String(q.label),
		}))
	}
	allProducts := []awscloudwatch.IWidget{
		graph("Reserves by outcome: all products", 8, counts(ReserveOutcomes, false), true, "answers / min"),
		graph("Reserve latency: all products", 5, []awscloudwatch.IMetric{
			s.serviceMetric("reserve", MetricReserveLatency, "p50").With(&awscloudwatch.MetricOptions{Label: jsii.String("p50")}),
			s.serviceMetric("reserve", MetricReserveLatency, "p99").With(&awscloudwatch.MetricOptions{Label: jsii.String("p99")}),
		}, false, "ms"),
		graph("Holds into payments: all products", 6, counts(HoldOutcomes, false), false, "events / min"),
		graph("Reserve 5xx: all products", 5, []awscloudwatch.IMetric{s.serviceMetric("reserve", MetricReserve5xx, "Sum")}, false, "answers / min"),
	}
	var alarms []interfacesawscloudwatch.IAlarmRef
	for _, id := range s.AlarmIDs {
		alarms = append(alarms, s.Alarms[id])
	}
	rows := [][]awscloudwatch.IWidget{
		{awscloudwatch.NewTextWidget(&awscloudwatch.TextWidgetProps{Width: jsii.Number(24), Height: jsii.Number(2), Markdown: jsii.String(
			"## lastunit: a drop\nPick the product in **Product** above (the ids the functions have reported). Namespace `" + MetricNamespace +
				"`, per minute, from the functions' Embedded Metric Format lines; the alarms below go to the stack's alarm topic. " +
				"Second by second, the same drop is on the pages' control room (`/dashboard`).")})},
		perProduct,
		allProducts,
		{
			// Every ProductId of the {Service,ProductId} set, a line each.
			graph("Reserves per product (ReserveOK)", 8, []awscloudwatch.IMetric{awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
				Expression: jsii.String("SEARCH('{" + MetricNamespace + "," + DimService + "," + DimProduct + `} MetricName="` + MetricReserveOK + `"', 'Sum', 60)`),
				Label:      jsii.String(""), Period: awscdk.Duration_Minutes(jsii.Number(1)),
			})}, false, "answers / min"),
			graph("The sweep's signals (> 0 raises an alarm)", 8, sweep, false, "count"),
			graph("Dead letters (visible messages)", 8, dlq, false, "messages"),
		},
		{awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
			Title: jsii.String("Alarms"), Width: jsii.Number(24), Height: jsii.Number(6), Alarms: &alarms,
		})},
	}
	widgets := make([]*[]awscloudwatch.IWidget, len(rows))
	for i := range rows {
		widgets[i] = &rows[i]
	}
	s.Dashboard = awscloudwatch.NewDashboard(s.Stack, jsii.String("DropDashboard"), &awscloudwatch.DashboardProps{
		DashboardName:   name(s.Props.Prefix, "drop"),
		DefaultInterval: awscdk.Duration_Hours(jsii.Number(1)),
		Widgets:         &widgets,
		Variables: &[]awscloudwatch.IVariable{awscloudwatch.NewDashboardVariable(&awscloudwatch.DashboardVariableOptions{
			Id: jsii.String("product"), Label: jsii.String("Product"),
			Type: awscloudwatch.VariableType_PATTERN, Value: jsii.String(ProductPattern),
			InputType: awscloudwatch.VariableInputType_SELECT,
			Values: awscloudwatch.Values_FromSearchComponents(&awscloudwatch.SearchComponents{
				Namespace: jsii.String(MetricNamespace), Dimensions: jsii.Strings(DimService, DimProduct),
				MetricName: jsii.String(MetricReserveOK), PopulateFrom: jsii.String(DimProduct),
			}),
			DefaultValue: awscloudwatch.DefaultValue_FIRST(),
		})},
	})
}
