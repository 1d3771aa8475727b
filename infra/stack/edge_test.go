package stack

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// flatten renders a template value as text: Fn::Join joined, references as {Ref id} or
// {GetAtt id.attr}, so a policy's text can be read.
func flatten(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if j, ok := x["Fn::Join"].([]any); ok {
			var parts []string
			for _, p := range j[1].([]any) {
				parts = append(parts, flatten(p))
			}
			return strings.Join(parts, fmt.Sprint(j[0]))
		}
		if r, ok := x["Ref"]; ok {
			return fmt.Sprintf("{Ref %v}", r)
		}
		if g, ok := x["Fn::GetAtt"].([]any); ok {
			return fmt.Sprintf("{GetAtt %v.%v}", g[0], g[1])
		}
	}
	return fmt.Sprint(v)
}

// cspOf returns the Content-Security-Policy of the template's response headers policy, which
// must be the pages' default behavior's.
func cspOf(t *testing.T, d cfnTemplate) (string, map[string]any) {
	t.Helper()
	id, p := d.one(t, "AWS::CloudFront::ResponseHeadersPolicy")
	_, dist := d.one(t, "AWS::CloudFront::Distribution")
	def := dist.Properties["DistributionConfig"].(map[string]any)["DefaultCacheBehavior"].(map[string]any)
	if got := refs(def["ResponseHeadersPolicyId"]); len(got) != 1 || got[0] != id {
		t.Errorf("the pages' behavior uses headers policy %v, want %s", def["ResponseHeadersPolicyId"], id)
	}
	sec := p.Properties["ResponseHeadersPolicyConfig"].(map[string]any)["SecurityHeadersConfig"].(map[string]any)
	return flatten(sec["ContentSecurityPolicy"].(map[string]any)["ContentSecurityPolicy"]), sec
}

// directives splits a CSP into its directives' source lists.
func directives(csp string) map[string]string {
	out := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		if name != "" {
			out[name] = strings.TrimSpace(value)
		}
	}
	return out
}

// TestSecurityHeaders: the pages' distribution sends a Content-Security-Policy (own origin,
// never framed, no plugins, the APIs, Stripe's origins only with a publishable key), HSTS,
// nosniff, a referrer policy and X-Frame-Options DENY, overriding whatever the origin says.
func TestSecurityHeaders(t *testing.T) {
	s, _, d := synth(t)
	csp, sec := cspOf(t, d)
	t.Logf("CSP (with a publishable key): %s", csp)
	ws := logicalID(s, s.APIs.WebSocket)
	want := map[string]string{
		"default-src": "'self'", "script-src": "'self' " + StripeJS, "style-src": "'self'", "img-src": "'self' data:",
		"object-src": "'none'", "base-uri": "'none'", "frame-ancestors": "'none'", "form-action": "'self'",
		"frame-src":   StripeJS + " " + StripeHooks,
		"connect-src": "'self' https://*.execute-api.{Ref AWS::Region}.{Ref AWS::URLSuffix} {GetAtt " + ws + ".ApiEndpoint} " + StripeAPI,
	}
	got := directives(csp)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("directives %v, want exactly %v", got, want)
	}
	for k, v := range map[string]any{
		"StrictTransportSecurity": map[string]any{"AccessControlMaxAgeSec": float64(730 * 24 * 3600), "IncludeSubdomains": true, "Override": true},
		"ContentTypeOptions":      map[string]any{"Override": true},
		"FrameOptions":            map[string]any{"FrameOption": "DENY", "Override": true},
		"ReferrerPolicy":          map[string]any{"ReferrerPolicy": "no-referrer", "Override": true},
	} {
		if fmt.Sprint(sec[k]) != fmt.Sprint(v) {
			t.Errorf("%s: %v, want %v", k, sec[k], v)
		}
	}
	if sec["ContentSecurityPolicy"].(map[string]any)["Override"] != true {
		t.Error("the CSP does not override the origin's")
	}

	// Without a publishable key (the variant), no Stripe origin; behind the WAF the APIs are
	// on the pages' own origin, so connect-src is 'self' alone.
	_, _, vd := variant(t)
	vcsp, _ := cspOf(t, vd)
	t.Logf("CSP (no key, WAF): %s", vcsp)
	if strings.Contains(vcsp, "stripe.com") {
		t.Errorf("no publishable key, yet the CSP allows Stripe: %s", vcsp)
	}
	vgot := directives(vcsp)
	if vgot["connect-src"] != "'self'" || vgot["script-src"] != "'self'" || vgot["frame-src"] != "'none'" || vgot["frame-ancestors"] != "'none'" {
		t.Errorf("variant CSP %v", vgot)
	}
}

// TestWAFOff: by default there is no web ACL, the distribution has none, and the HTTP API
// keeps its own endpoint (with CORS for the pages, TestSite).
func TestWAFOff(t *testing.T) {
	_, tp, d := synth(t)
	has(t, "no web ACL", func() { tp.ResourceCountIs(jsii.String("AWS::WAFv2::WebACL"), jsii.Number(0)) })
	_, dist := d.one(t, "AWS::CloudFront::Distribution")
	cfg := dist.Properties["DistributionConfig"].(map[string]any)
	if cfg["WebACLId"] != nil || cfg["CacheBehaviors"] != nil {
		t.Errorf("WAF off, yet the distribution has a web ACL %v or API behaviors %v", cfg["WebACLId"], cfg["CacheBehaviors"])
	}
	if _, ok := d.Rules["WafRegion"]; ok {
		t.Errorf("WAF off, yet the template holds the stack to %s", WAFRegion)
	}
}

// TestWAFOn: with the WAF, the APIs are behind the pages' distribution (every HTTP route's
// first segment to the HTTP API, /live to the WebSocket API, nothing cached, Authorization
// forwarded, Host not), with a CLOUDFRONT web ACL of two rate-based rules per IP that answer
// API.md's 429; the template refuses any region but us-east-1; no page path is taken by the API.
func TestWAFOn(t *testing.T) {
	vs, vtp, vd := variant(t)
	acl, _ := vd.one(t, "AWS::WAFv2::WebACL")
	rate := func(limit int, scope any) map[string]any {
		return map[string]any{"RateBasedStatement": map[string]any{
			"Limit": limit, "AggregateKeyType": "IP", "EvaluationWindowSec": wafWindowSeconds, "ScopeDownStatement": scope,
		}}
	}
	block := map[string]any{"Block": map[string]any{"CustomResponse": map[string]any{
		"ResponseCode": 429, "CustomResponseBodyKey": "rate_limited",
		"ResponseHeaders": []any{map[string]any{"Name": "Retry-After", "Value": "60"}},
	}}}
	has(t, "web ACL", func() {
		vtp.HasResourceProperties(jsii.String("AWS::WAFv2::WebACL"), props(map[string]any{
			"Scope": "CLOUDFRONT", "DefaultAction": map[string]any{"Allow": map[string]any{}},
			"CustomResponseBodies": map[string]any{"rate_limited": map[string]any{"ContentType": "APPLICATION_JSON", "Content": RateLimitedBody}},
			"Rules": []any{
				assertions.Match_ObjectLike(props(map[string]any{"Name": "writes-per-ip", "Action": block,
					"Statement": rate(variantProps.WAFWriteRateLimit, map[string]any{"ByteMatchStatement": assertions.Match_ObjectLike(props(map[string]any{
						"FieldToMatch": map[string]any{"Method": map[string]any{}}, "PositionalConstraint": "EXACTLY", "SearchString": "POST",
					}))})})),
				assertions.Match_ObjectLike(props(map[string]any{"Name": "requests-per-ip", "Action": block,
					"Statement": rate(variantProps.WAFRateLimit, assertions.Match_Absent())})),
			},
		}))
	})
	_, dist := vd.one(t, "AWS::CloudFront::Distribution")
	cfg := dist.Properties["DistributionConfig"].(map[string]any)
	if got := refs(cfg["WebACLId"]); len(got) != 1 || got[0] != acl {
		t.Errorf("distribution web ACL %v, want %s", cfg["WebACLId"], acl)
	}
	originOf := map[string]string{} // origin id → domain text
	for _, o := range cfg["Origins"].([]any) {
		o := o.(map[string]any)
		originOf[fmt.Sprint(o["Id"])] = flatten(o["DomainName"])
	}
	httpAPI, wsAPI := logicalID(vs, vs.APIs.HTTP), logicalID(vs, vs.APIs.WebSocket)
	behaviors := map[string]map[string]any{}
	for _, b := range cfg["CacheBehaviors"].([]any) {
		b := b.(map[string]any)
		behaviors[fmt.Sprint(b["PathPattern"])] = b
	}
	wantPaths := map[string]string{"/" + WebSocketStageName: wsAPI}
	for _, p := range APIPathPatterns() {
		wantPaths[p] = httpAPI
	}
	for _, r := range HTTPRoutes {
		matched := false
		for p := range wantPaths {
			matched = matched || strings.HasPrefix(r.Path(), strings.TrimSuffix(p, "*"))
		}
		if !matched {
			t.Errorf("route %s has no behavior", r.Key)
		}
	}
	allViewerExceptHost := "b689b0a8-53d0-40ab-baf2-68738e2966ac" // CloudFront's managed AllViewerExceptHostHeader
	for p, api := range wantPaths {
		b, ok := behaviors[p]
		if !ok {
			t.Errorf("no behavior for %s", p)
			continue
		}
		if want := "{Ref " + api + "}.execute-api.{Ref AWS::Region}.{Ref AWS::URLSuffix}"; originOf[fmt.Sprint(b["TargetOriginId"])] != want {
			t.Errorf("%s goes to %s, want %s", p, originOf[fmt.Sprint(b["TargetOriginId"])], want)
		}
		if b["OriginRequestPolicyId"] != allViewerExceptHost || b["ViewerProtocolPolicy"] != "https-only" {
			t.Errorf("%s: origin request policy %v, viewer protocol %v", p, b["OriginRequestPolicyId"], b["ViewerProtocolPolicy"])
		}
	}
	if len(behaviors) != len(wantPaths) {
		t.Errorf("behaviors %v, want %v", behaviors, wantPaths)
	}
	has(t, "API cache policy: nothing kept, Authorization in the key", func() {
		vtp.HasResourceProperties(jsii.String("AWS::CloudFront::CachePolicy"), props(map[string]any{
			"CachePolicyConfig": assertions.Match_ObjectLike(props(map[string]any{
				"DefaultTTL": 0, "MinTTL": 0, "MaxTTL": 1,
				"ParametersInCacheKeyAndForwardedToOrigin": assertions.Match_ObjectLike(props(map[string]any{
					"HeadersConfig": map[string]any{"HeaderBehavior": "whitelist", "Headers": []any{"Authorization"}},
				})),
			})),
		}))
	})
	has(t, "same origin: no CORS", func() {
		vtp.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Api"), props(map[string]any{
			"ProtocolType": "HTTP", "CorsConfiguration": assertions.Match_Absent(),
		}))
	})
	rule, _ := vd.Rules["WafRegion"].(map[string]any)
	if !strings.Contains(fmt.Sprint(rule), WAFRegion) || !strings.Contains(fmt.Sprint(rule), "AWS::Region") {
		t.Errorf("no region rule for the WAF: %v", vd.Rules)
	}
	// No page is served by the API: every file of web/ and /dashboard stays on the bucket.
	pages := []string{"/", "/dashboard", "/config.json"}
	_ = filepath.WalkDir("../../web", func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			pages = append(pages, "/"+filepath.ToSlash(strings.TrimPrefix(path, "../../web/")))
		}
		return nil
	})
	for _, page := range pages {
		for p := range wantPaths {
			if strings.HasPrefix(page, strings.TrimSuffix(p, "*")) && p != "/" {
				t.Errorf("page %s would go to the API (%s)", page, p)
			}
		}
	}
	_, _, _, err := newTestStack(t, Props{WebDir: "../../web", WAF: true, StackProps: awscdk.StackProps{
		Env: &awscdk.Environment{Region: jsii.String("eu-west-1"), Account: jsii.String("123456789012")},
	}})
	if err == nil || !strings.Contains(err.Error(), WAFRegion) {
		t.Errorf("WAF in eu-west-1: %v, want a refusal naming %s", err, WAFRegion)
	}
}

// TestHeadersMatchRunner: the distribution's headers are the local runner's
// (web/headers.go, SecurityHeaders, which the browser test runs under): every fixed CSP
// directive and every other header it sets, read from its source. Only HSTS is the CDN's own.
func TestHeadersMatchRunner(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../web/headers.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fixed []string             // "style-src 'self'", ...: directive literals with their value
	headers := map[string]string{} // the map literal's constant entries
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.BasicLit:
			if v, err := strconv.Unquote(x.Value); err == nil && regexp.MustCompile(`^[a-z-]+ \S`).MatchString(v) {
				fixed = append(fixed, v)
			}
		case *ast.KeyValueExpr:
			k, ok1 := x.Key.(*ast.BasicLit)
			v, ok2 := x.Value.(*ast.BasicLit)
			if ok1 && ok2 {
				ks, _ := strconv.Unquote(k.Value)
				vs, _ := strconv.Unquote(v.Value)
				headers[ks] = vs
			}
		}
		return true
	})
	if len(fixed) < 5 || len(headers) < 3 {
		t.Fatalf("read %v and %v from web/headers.go: its shape changed", fixed, headers)
	}
	_, _, d := synth(t)
	csp, sec := cspOf(t, d)
	got := directives(csp)
	for _, lit := range fixed {
		name, value, _ := strings.Cut(lit, " ")
		if got[name] != value {
			t.Errorf("%s: the runner sends %q, the distribution %q", name, value, got[name])
		}
	}
	for name := range got {
		found := false
		for _, lit := range fixed {
			found = found || strings.HasPrefix(lit, name+" ")
		}
		if !found && name != "script-src" && name != "connect-src" && name != "frame-src" {
			t.Errorf("the distribution sends %s, the runner does not", name)
		}
	}
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        fmt.Sprint(sec["ReferrerPolicy"].(map[string]any)["ReferrerPolicy"]),
		"X-Frame-Options":        fmt.Sprint(sec["FrameOptions"].(map[string]any)["FrameOption"]),
	}
	for k, v := range want {
		if headers[k] != v {
			t.Errorf("%s: the runner sends %q, the distribution %q", k, headers[k], v)
		}
	}
}
