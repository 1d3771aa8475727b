package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// The stack is synthesized once for all tests (a synth through jsii takes seconds).
var (
	synthOnce sync.Once
	synthErr  error
	built     *Stack
	tmpl      assertions.Template
	doc       cfnTemplate
)

// cfnTemplate is the synthesized CloudFormation template, decoded for Go-side checks.
type cfnTemplate struct {
	Resources map[string]cfnResource `json:"Resources"`
	Outputs   map[string]any         `json:"Outputs"`
	Rules     map[string]any         `json:"Rules"`
}

type cfnResource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
	DependsOn  any            `json:"DependsOn"`
	// DeletionPolicy is Retain, Snapshot or Delete ("" : Delete).
	DeletionPolicy string `json:"DeletionPolicy"`
}

func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// synth builds the stack as infra/main.go does, with cdk.json's context and a fake
// deployment package per function, and returns the assertions template.
func synth(t *testing.T) (*Stack, assertions.Template, cfnTemplate) {
	t.Helper()
	synthOnce.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				synthErr = fmt.Errorf("synth panicked: %v", r)
			}
		}()
		raw, err := os.ReadFile("../cdk.json")
		if err != nil {
			synthErr = err
			return
		}
		var cdkJSON struct {
			Context map[string]any `json:"context"`
		}
		if err := json.Unmarshal(raw, &cdkJSON); err != nil {
			synthErr = fmt.Errorf("cdk.json: %w", err)
			return
		}
		codeDir, err := os.MkdirTemp("", "lastunit-infra-test-")
		if err != nil {
			synthErr = err
			return
		}
		for _, name := range FunctionNames() {
			dir := filepath.Join(codeDir, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				synthErr = err
				return
			}
			if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\n# "+name+"\n"), 0o755); err != nil {
				synthErr = err
				return
			}
		}
		outdir, err := os.MkdirTemp("", "lastunit-cdk-out-")
		if err != nil {
			synthErr = err
			return
		}
		app := awscdk.NewApp(&awscdk.AppProps{Context: &cdkJSON.Context, Outdir: jsii.String(outdir)})
		built = New(app, "Lastunit", Props{
			AlarmEmail: "ops@example.com", WebDir: "../../web", StripePublishableKey: "pk_test_site",
			Code: func(name string) awslambda.Code {
				return awslambda.Code_FromAsset(jsii.String(filepath.Join(codeDir, name)), nil)
			},
		})
		tmpl = assertions.Template_FromStack(built.Stack, nil)
		b, err := json.Marshal(tmpl.ToJSON())
		if err != nil {
			synthErr = err
			return
		}
		synthErr = json.Unmarshal(b, &doc)
	})
	if synthErr != nil {
		t.Fatalf("synth: %v", synthErr)
	}
	return built, tmpl, doc
}

// has runs a jsii assertion (which panics on mismatch) as a test error.
func has(t *testing.T, what string, assert func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	assert()
}

// props builds a *map for assertions matchers.
func props(kv map[string]any) *map[string]any { return &kv }

// constructsNode is a construct's node (for the construct parameters of the helpers).
type constructsNode = constructs.Node

// logicalID is the template id of a construct's CloudFormation resource.
func logicalID(s *Stack, c interface{ Node() constructs.Node }) string {
	return *s.Stack.GetLogicalId(c.Node().DefaultChild().(awscdk.CfnElement))
}

// ofType returns the template's resources of one type, by logical id.
func (d cfnTemplate) ofType(typ string) map[string]cfnResource {
	out := map[string]cfnResource{}
	for id, r := range d.Resources {
		if r.Type == typ {
			out[id] = r
		}
	}
	return out
}

// functionID returns the logical id of the deployed function named prefix-name.
func (d cfnTemplate) functionID(t *testing.T, name string) string {
	t.Helper()
	for id, r := range d.ofType("AWS::Lambda::Function") {
		if r.Properties["FunctionName"] == "lastunit-"+name {
			return id
		}
	}
	t.Fatalf("no function lastunit-%s in the template", name)
	return ""
}

// refs returns every logical id that v references with Ref or Fn::GetAtt, at any depth.
func refs(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				switch k {
				case "Ref":
					if s, ok := val.(string); ok && !strings.HasPrefix(s, "AWS::") {
						out = append(out, s)
					}
				case "Fn::GetAtt":
					if a, ok := val.([]any); ok && len(a) > 0 {
						out = append(out, fmt.Sprint(a[0]))
					}
				default:
					walk(val)
				}
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// strs reads a string or a list of strings (IAM's Action and Resource take both).
func strs(v any) []any {
	if a, ok := v.([]any); ok {
		return a
	}
	return []any{v}
}

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// asList reads a list property (nil: empty).
func asList(v any) []any {
	a, _ := v.([]any)
	return a
}

// proxyRole is the logical id of the RDS Proxy's role.
func (d cfnTemplate) proxyRole(t *testing.T) string {
	t.Helper()
	for _, p := range d.ofType("AWS::RDS::DBProxy") {
		if r := refs(p.Properties["RoleArn"]); len(r) == 1 {
			return r[0]
		}
	}
	t.Fatal("no RDS Proxy with a role")
	return ""
}

// triggerProviderRole is the logical id of the role of the CDK's trigger provider function
// (the custom resource that invokes the migrate function).
func (d cfnTemplate) triggerProviderRole(t *testing.T) string {
	t.Helper()
	for _, r := range d.ofType("Custom::Trigger") {
		fn := refs(r.Properties["ServiceToken"])
		if len(fn) != 1 {
			t.Fatalf("trigger ServiceToken %v", r.Properties["ServiceToken"])
		}
		if role := refs(d.Resources[fn[0]].Properties["Role"]); len(role) == 1 {
			return role[0]
		}
	}
	t.Fatal("no trigger with a provider role")
	return ""
}
