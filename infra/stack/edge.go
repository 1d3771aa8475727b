package stack

import (
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfront"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfrontorigins"
	"github.com/aws/aws-cdk-go/awscdk/v2/awswafv2"
	"github.com/aws/jsii-runtime-go"
)

// Default rate-based rules of the web ACL (Props.WAFRateLimit, Props.WAFWriteRateLimit):
// requests per client IP over five minutes. A sale's shoppers behind one carrier NAT share an
// IP, so the limits are generous; the per-shopper rate in Redis (API.md) is the fine one.
const (
	DefaultWAFRateLimit      = 3000 // every request through the distribution
	DefaultWAFWriteRateLimit = 600  // POSTs (reservations, checkout, admin writes)
	wafWindowSeconds         = 300
)

// WAFRegion is where a CloudFront web ACL must be created: a stack with Props.WAF deploys there.
const WAFRegion = "us-east-1"

// Edge is the web ACL and what routes the APIs through the pages' distribution.
type Edge struct {
	WebACL awswafv2.CfnWebACL
	// APIPaths is the distribution's path patterns that go to the HTTP API.
	APIPaths []string
}

// RateLimitedBody is the web ACL's answer to a blocked request: API.md's 429 in its error shape.
const RateLimitedBody = `{"error":{"code":"rate_limited","message":"too many requests from this address; try again in a minute"}}`

// APIPathPatterns is the CloudFront path pattern of each HTTP API route's first path segment
// ("/products*", "/admin/*"...), sorted: behind the WAF these paths go to the HTTP API and
// every other path to the pages.
func APIPathPatterns() []string {
	seen := map[string]bool{}
	for _, r := range HTTPRoutes {
		seg := strings.SplitN(strings.TrimPrefix(r.Path(), "/"), "/", 2)[0]
		seen["/"+seg+"*"] = true
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// newEdge puts both APIs behind the pages' distribution (an HTTP API cannot take a web ACL
// itself) and attaches a WAF web ACL with two rate-based rules per client IP: one on every
// request, one on POSTs. The HTTP API's routes keep their paths; the WebSocket stage is
// /live. API responses are not cached (the cache key holds Authorization, and the API sends
// no cache headers), and every viewer header but Host goes to the origin. The CloudFront web
// ACL exists only in us-east-1: the template refuses another region (a CloudFormation rule).
// The execute-api endpoints stay reachable directly (README: a custom domain closes that).
func (s *Stack) newEdge() {
	if r := s.Stack.Region(); r != nil && !*awscdk.Token_IsUnresolved(r) && *r != WAFRegion {
		panic(fmt.Sprintf("Props.WAF: a CloudFront web ACL is created in %s only; this stack is in %s", WAFRegion, *r))
	}
	awscdk.NewCfnRule(s.Stack, jsii.String("WafRegion"), &awscdk.CfnRuleProps{
		Assertions: &[]*awscdk.CfnRuleAssertion{{
			Assert:            awscdk.Fn_ConditionEquals(awscdk.Aws_REGION(), jsii.String(WAFRegion)),
			AssertDescription: jsii.String("the WAF (context waf=true) needs the stack in " + WAFRegion + ": CloudFront web ACLs live there"),
		}},
	})
	e := &Edge{APIPaths: APIPathPatterns()}
	executeAPI := func(apiID *string) *string {
		return awscdk.Fn_Join(jsii.String(""), &[]*string{apiID, jsii.String(".execute-api."), awscdk.Aws_REGION(), jsii.String("."), awscdk.Aws_URL_SUFFIX()})
	}
	httpOrigin := awscloudfrontorigins.NewHttpOrigin(executeAPI(s.APIs.HTTP.ApiId()), &awscloudfrontorigins.HttpOriginProps{
		ProtocolPolicy: awscloudfront.OriginProtocolPolicy_HTTPS_ONLY,
	})
	wsOrigin := awscloudfrontorigins.NewHttpOrigin(executeAPI(s.APIs.WebSocket.ApiId()), &awscloudfrontorigins.HttpOriginProps{
		ProtocolPolicy: awscloudfront.OriginProtocolPolicy_HTTPS_ONLY,
	})
	apiCache := awscloudfront.NewCachePolicy(s.Stack, jsii.String("ApiCachePolicy"), &awscloudfront.CachePolicyProps{
		Comment:    jsii.String("lastunit API: no caching unless the API asks; Authorization in the key (and so forwarded)"),
		DefaultTtl: awscdk.Duration_Seconds(jsii.Number(0)), MinTtl: awscdk.Duration_Seconds(jsii.Number(0)), MaxTtl: awscdk.Duration_Seconds(jsii.Number(1)),
		HeaderBehavior:      awscloudfront.CacheHeaderBehavior_AllowList(jsii.String("Authorization")),
		QueryStringBehavior: awscloudfront.CacheQueryStringBehavior_All(),
		CookieBehavior:      awscloudfront.CacheCookieBehavior_None(),
	})
	for _, p := range e.APIPaths {
		s.Site.Distribution.AddBehavior(jsii.String(p), httpOrigin, &awscloudfront.AddBehaviorOptions{
			AllowedMethods:       awscloudfront.AllowedMethods_ALLOW_ALL(),
			ViewerProtocolPolicy: awscloudfront.ViewerProtocolPolicy_HTTPS_ONLY,
			CachePolicy:          apiCache,
			OriginRequestPolicy:  awscloudfront.OriginRequestPolicy_ALL_VIEWER_EXCEPT_HOST_HEADER(),
		})
	}
	s.Site.Distribution.AddBehavior(jsii.String("/"+WebSocketStageName), wsOrigin, &awscloudfront.AddBehaviorOptions{
		AllowedMethods:       awscloudfront.AllowedMethods_ALLOW_GET_HEAD(),
		ViewerProtocolPolicy: awscloudfront.ViewerProtocolPolicy_HTTPS_ONLY,
		CachePolicy:          awscloudfront.CachePolicy_CACHING_DISABLED(),
		OriginRequestPolicy:  awscloudfront.OriginRequestPolicy_ALL_VIEWER_EXCEPT_HOST_HEADER(),
	})

	visibility := func(name string) *awswafv2.CfnWebACL_VisibilityConfigProperty {
		return &awswafv2.CfnWebACL_VisibilityConfigProperty{
			CloudWatchMetricsEnabled: jsii.Bool(true), SampledRequestsEnabled: jsii.Bool(true), MetricName: jsii.String(name),
		}
	}
	block := &awswafv2.CfnWebACL_RuleActionProperty{Block: &awswafv2.CfnWebACL_BlockActionProperty{
		CustomResponse: &awswafv2.CfnWebACL_CustomResponseProperty{
			ResponseCode: jsii.Number(429), CustomResponseBodyKey: jsii.String("rate_limited"),
			ResponseHeaders: &[]interface{}{&awswafv2.CfnWebACL_CustomHTTPHeaderProperty{Name: jsii.String("Retry-After"), Value: jsii.String("60")}},
		},
	}}
	rate := func(limit int, scope *awswafv2.CfnWebACL_StatementProperty) *awswafv2.CfnWebACL_StatementProperty {
		return &awswafv2.CfnWebACL_StatementProperty{RateBasedStatement: &awswafv2.CfnWebACL_RateBasedStatementProperty{
			Limit: jsii.Number(float64(limit)), AggregateKeyType: jsii.String("IP"), EvaluationWindowSec: jsii.Number(wafWindowSeconds),
			ScopeDownStatement: scope,
		}}
	}
	posts := &awswafv2.CfnWebACL_StatementProperty{ByteMatchStatement: &awswafv2.CfnWebACL_ByteMatchStatementProperty{
		FieldToMatch:         &awswafv2.CfnWebACL_FieldToMatchProperty{Method: map[string]any{}},
		PositionalConstraint: jsii.String("EXACTLY"),
		SearchString:         jsii.String("POST"),
		TextTransformations:  &[]interface{}{&awswafv2.CfnWebACL_TextTransformationProperty{Priority: jsii.Number(0), Type: jsii.String("NONE")}},
	}}
	e.WebACL = awswafv2.NewCfnWebACL(s.Stack, jsii.String("WebAcl"), &awswafv2.CfnWebACLProps{
		Name:          name(s.Props.Prefix, "edge"),
		Description:   jsii.String("lastunit: rate limits per client IP in front of the pages and the APIs"),
		Scope:         jsii.String("CLOUDFRONT"),
		DefaultAction: &awswafv2.CfnWebACL_DefaultActionProperty{Allow: map[string]any{}},
		CustomResponseBodies: map[string]any{"rate_limited": &awswafv2.CfnWebACL_CustomResponseBodyProperty{
			ContentType: jsii.String("APPLICATION_JSON"), Content: jsii.String(RateLimitedBody),
		}},
		VisibilityConfig: visibility(s.Props.Prefix + "-edge"),
		Rules: &[]interface{}{
			&awswafv2.CfnWebACL_RuleProperty{
				Name: jsii.String("writes-per-ip"), Priority: jsii.Number(0), Action: block,
				Statement: rate(s.Props.WAFWriteRateLimit, posts), VisibilityConfig: visibility(s.Props.Prefix + "-writes-per-ip"),
			},
			&awswafv2.CfnWebACL_RuleProperty{
				Name: jsii.String("requests-per-ip"), Priority: jsii.Number(1), Action: block,
				Statement: rate(s.Props.WAFRateLimit, nil), VisibilityConfig: visibility(s.Props.Prefix + "-requests-per-ip"),
			},
		},
	})
	s.Site.Distribution.AttachWebAclId(e.WebACL.AttrArn())
	s.Edge = e
}
