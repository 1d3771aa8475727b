package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// nagConfigs are the stacks cdk-nag checks: the default one (what `make deploy` deploys
// without context), production with the WAF, that with a domain of one's own (which
// takes the CFR4 suppression away), and the default one with X-Ray off (context).
var nagConfigs = []struct {
	name    string
	props   Props
	context map[string]any
}{
	{"default", Props{WebDir: "../../web", StripePublishableKey: "pk_test_site"}, nil},
	{"production, WAF", Props{WebDir: "../../web", Production: true, WAF: true, AlarmEmail: "ops@example.com"}, nil},
	{"production, WAF, own domain", Props{WebDir: "../../web", Production: true, WAF: true, AlarmEmail: "ops@example.com",
		SiteDomain: "shop.example.com", SiteCertificateArn: "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"}, nil},
	// X-Ray off (context tracing=false): Serverless-LambdaTracing is suppressed with its reason.
	{"default, tracing off", Props{WebDir: "../../web"}, map[string]any{TracingContext: "false"}},
}

// nagStack synthesizes props (and CDK context, if any) with cdk-nag's AwsSolutions and Serverless packs applied and
// returns the stack's annotations.
func nagStack(t *testing.T, props Props, context map[string]any) (*Stack, assertions.Annotations) {
	t.Helper()
	synth(t) // jsii is up
	codeDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(codeDir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	props.Code = func(string) awslambda.Code { return awslambda.Code_FromAsset(jsii.String(codeDir), nil) }
	appProps := &awscdk.AppProps{Outdir: jsii.String(t.TempDir())}
	if context != nil {
		appProps.Context = &context
	}
	app := awscdk.NewApp(appProps)
	s := New(app, "LastunitNag", props)
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	awscdk.Aspects_Of(app).Add(cdknag.NewServerlessChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return s, assertions.Annotations_FromStack(s.Stack)
}

// TestNag: cdk-nag's AwsSolutions and Serverless packs find nothing that is not suppressed
// with a reason (nag.go), in the default stack and in production with the WAF: a new finding,
// error or warning, fails the test with the resource and the rule.
func TestNag(t *testing.T) {
	for _, c := range nagConfigs {
		t.Run(c.name, func(t *testing.T) {
			_, an := nagStack(t, c.props, c.context)
			var findings []string
			for level, found := range map[string]*[]*cxapi.SynthesisMessage{
				"error":   an.FindError(jsii.String("*"), assertions.Match_AnyValue()),
				"warning": an.FindWarning(jsii.String("*"), assertions.Match_AnyValue()),
			} {
				for _, m := range *found {
					findings = append(findings, fmt.Sprintf("%s %s: %v", level, *m.Id, m.Entry.Data))
				}
			}
			sort.Strings(findings)
			for _, f := range findings {
				t.Error(f)
			}
		})
	}
}

// TestNagSuppressionsDocumented: every rule the stack suppresses is in docs/deploy-checks.md.
func TestNagSuppressionsDocumented(t *testing.T) {
	raw, err := os.ReadFile("../../docs/deploy-checks.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range nagConfigs {
		s, _ := nagStack(t, c.props, c.context)
		for _, rule := range s.SuppressedRules() {
			if !strings.Contains(string(raw), "`"+rule+"`") {
				t.Errorf("%s: %s is suppressed but docs/deploy-checks.md does not name it", c.name, rule)
			}
		}
	}
}
