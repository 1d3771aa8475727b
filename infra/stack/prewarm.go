package stack

import (
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"
)

// LiveAlias is the alias the HTTP routes invoke for the functions that can be pre-warmed:
// provisioned concurrency lives on an alias (or a version), never on $LATEST.
const LiveAlias = "live"

// Prewarmable is the functions an operator can pre-warm before a drop (Props.Prewarm).
var Prewarmable = []string{"reserve", "checkout"}

// newAliases gives reserve and checkout their "live" alias on the current version, and, when
// Props.Prewarm names a window, an Application Auto Scaling target on each alias with two
// scheduled actions: at PrewarmFrom provisioned concurrency becomes N (min = max = N), at
// PrewarmUntil it goes back to 0. The environments are initialized before the drop, so the
// drop's first requests meet no cold start. N must fit in the function's reserved concurrency.
func (s *Stack) newAliases() {
	s.Aliases = map[string]awslambda.Alias{}
	for _, name := range Prewarmable {
		s.Aliases[name] = awslambda.NewAlias(s.Stack, jsii.String(logicalName(name)+"LiveAlias"), &awslambda.AliasProps{
			AliasName: jsii.String(LiveAlias),
			Version:   s.Functions[name].CurrentVersion(),
		})
	}
	p := s.Props
	if len(p.Prewarm) == 0 {
		return
	}
	if p.PrewarmFrom.IsZero() || p.PrewarmUntil.IsZero() || !p.PrewarmUntil.After(p.PrewarmFrom) {
		panic(fmt.Sprintf("Prewarm needs PrewarmFrom before PrewarmUntil (got %v, %v)", p.PrewarmFrom, p.PrewarmUntil))
	}
	s.Prewarm = map[string]awsapplicationautoscaling.ScalableTarget{}
	names := make([]string, 0, len(p.Prewarm))
	for name := range p.Prewarm {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n := p.Prewarm[name]
		alias, ok := s.Aliases[name]
		if !ok {
			panic(fmt.Sprintf("Prewarm[%s]: only %v can be pre-warmed", name, Prewarmable))
		}
		if reserved := s.Data.Budget.Concurrency[name]; n < 1 || n > reserved {
			panic(fmt.Sprintf("Prewarm[%s] = %d: want 1..%d (its reserved concurrency)", name, n, reserved))
		}
		id := logicalName(name) + "Prewarm"
		target := awsapplicationautoscaling.NewScalableTarget(s.Stack, jsii.String(id), &awsapplicationautoscaling.ScalableTargetProps{
			ServiceNamespace:  awsapplicationautoscaling.ServiceNamespace_LAMBDA,
			ScalableDimension: jsii.String("lambda:function:ProvisionedConcurrency"),
			ResourceId: awscdk.Fn_Join(jsii.String(""), &[]*string{
				jsii.String("function:"), s.Functions[name].FunctionName(), jsii.String(":" + LiveAlias),
			}),
			MinCapacity: jsii.Number(0),
			MaxCapacity: jsii.Number(float64(n)),
		})
		target.Node().AddDependency(alias)
		at := func(t time.Time) awsapplicationautoscaling.Schedule {
			t = t.UTC()
			return awsapplicationautoscaling.Schedule_At(&t)
		}
		target.ScaleOnSchedule(jsii.String("Warm"), &awsapplicationautoscaling.ScalingSchedule{
			Schedule: at(p.PrewarmFrom), MinCapacity: jsii.Number(float64(n)), MaxCapacity: jsii.Number(float64(n)),
		})
		target.ScaleOnSchedule(jsii.String("Cool"), &awsapplicationautoscaling.ScalingSchedule{
			Schedule: at(p.PrewarmUntil), MinCapacity: jsii.Number(0), MaxCapacity: jsii.Number(0),
		})
		s.Prewarm[name] = target
	}
}

// invokable is what the API invokes for a function: its live alias when it has one.
func (s *Stack) invokable(name string) awslambda.IFunction {
	if a, ok := s.Aliases[name]; ok {
		return a
	}
	return s.Functions[name]
}
