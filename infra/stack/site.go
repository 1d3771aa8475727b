package stack

import (
	"sort"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscertificatemanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfront"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfrontorigins"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3deployment"
	"github.com/aws/jsii-runtime-go"
)

// SiteExclude is what of web/ is not deployed: the Go package that embeds the pages for the
// local runner (every .go file), and the README's screenshots.
var SiteExclude = []string{"*.go", "screenshots"}

// SiteRewrite is the CloudFront Function (viewer request) that serves dashboard.html at
// /dashboard, as the local runner does (cmd/local/pages.go); / is the default root object.
const SiteRewrite = `function handler(event) {
  var r = event.request;
  if (r.uri === "/dashboard" || r.uri === "/dashboard/") { r.uri = "/dashboard.html"; }
  return r;
}`

// Site is the static pages (web/) in a private bucket behind CloudFront.
type Site struct {
	Bucket awss3.Bucket
	// Logs receives the bucket's server access logs (s3/) and the distribution's standard
	// logs (cloudfront/), expired after Props.LogRetentionDays.
	Logs         awss3.Bucket
	Distribution awscloudfront.Distribution
	Rewrite      awscloudfront.Function
	Deployment   awss3deployment.BucketDeployment
	// Headers is the pages' security headers (SiteCSP, HSTS, nosniff, referrer, frame options).
	Headers awscloudfront.ResponseHeadersPolicy
}

// Stripe's origins the Payment Element needs (its script, its iframes, its API), allowed by
// SiteCSP only when a publishable key is configured.
const (
	StripeJS    = "https://js.stripe.com"
	StripeHooks = "https://hooks.stripe.com"
	StripeAPI   = "https://api.stripe.com"
)

// SiteCSP is the pages' Content-Security-Policy, the same as the local runner's
// (web.SecurityHeaders; TestHeadersMatchRunner): everything from the pages' own origin, no
// inline script or style (web/ has none), no plugins, never framed; the browser may talk to
// the APIs (apiSources: the HTTP API's and the WebSocket API's origins, or none when they are
// on the pages' origin behind the WAF) and, with a publishable key, to Stripe.
func SiteCSP(apiSources []*string, stripe bool) *string {
	script, frame, connect := "'self'", "'none'", []*string{jsii.String("'self'")}
	connect = append(connect, apiSources...)
	if stripe {
		script, frame = "'self' "+StripeJS, StripeJS+" "+StripeHooks
		connect = append(connect, jsii.String(StripeAPI))
	}
	parts := []*string{jsii.String("default-src 'self'; script-src " + script + "; style-src 'self'; img-src 'self' data:; " +
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; frame-src " + frame +
		"; connect-src")}
	for _, c := range connect {
		parts = append(parts, jsii.String(" "), c)
	}
	return awscdk.Fn_Join(jsii.String(""), &parts)
}

// siteAPISources is what the pages' connect-src names besides 'self'. The HTTP API cannot be
// named exactly: its CORS names the distribution, so the distribution's policy naming the API
// would be a dependency cycle; any execute-api host of the stack's region is allowed instead.
// The WebSocket API is named exactly. Behind the WAF both are on the pages' origin ('self').
func (s *Stack) siteAPISources() []*string {
	if s.Props.WAF || s.APIs == nil {
		return nil
	}
	return []*string{
		awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("https://*.execute-api."), awscdk.Aws_REGION(), jsii.String("."), awscdk.Aws_URL_SUFFIX()}),
		s.APIs.WebSocket.ApiEndpoint(), // wss://<id>.execute-api.<region>.amazonaws.com
	}
}

// withSite says whether the stack deploys the pages. Not in LocalStack: CloudFront and the
// BucketDeployment's Lambda layer need LocalStack Pro, and the local runner serves the pages.
func (p Props) withSite() bool { return !p.LocalStack }

// newSite builds the bucket (private, encrypted, TLS only) and the distribution that reads it
// through Origin Access Control. Before the HTTP API: its CORS allows the distribution's origin.
func (s *Stack) newSite() {
	site := &Site{}
	site.Logs = awss3.NewBucket(s.Stack, jsii.String("AccessLogs"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:        awss3.BucketEncryption_S3_MANAGED, // CloudFront's standard logs cannot write to a KMS bucket
		EnforceSSL:        jsii.Bool(true),
		// CloudFront's standard logging writes through an ACL grant: ACLs stay enabled here only.
		ObjectOwnership: awss3.ObjectOwnership_BUCKET_OWNER_PREFERRED,
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Expiration: awscdk.Duration_Days(jsii.Number(float64(s.Props.LogRetentionDays))),
		}},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN, // logs outlive the stack (until they expire)
	})
	site.Bucket = awss3.NewBucket(s.Stack, jsii.String("WebBucket"), &awss3.BucketProps{
		BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:             awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:             jsii.Bool(true),
		ObjectOwnership:        awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		ServerAccessLogsBucket: site.Logs,
		ServerAccessLogsPrefix: jsii.String("s3/"),
		// Kept when the stack is deleted (CDK's default): emptying it would take another
		// custom-resource function; its content is rebuilt by any deploy.
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	site.Rewrite = awscloudfront.NewFunction(s.Stack, jsii.String("WebRewrite"), &awscloudfront.FunctionProps{
		Comment: jsii.String("lastunit: /dashboard -> /dashboard.html"),
		Code:    awscloudfront.FunctionCode_FromInline(jsii.String(SiteRewrite)),
		Runtime: awscloudfront.FunctionRuntime_JS_2_0(),
	})
	site.Headers = awscloudfront.NewResponseHeadersPolicy(s.Stack, jsii.String("WebHeaders"), &awscloudfront.ResponseHeadersPolicyProps{
		Comment: jsii.String("lastunit pages: CSP, HSTS, nosniff, no referrer, no framing (as web.SecurityHeaders, plus HSTS)"),
		SecurityHeadersBehavior: &awscloudfront.ResponseSecurityHeadersBehavior{
			ContentSecurityPolicy: &awscloudfront.ResponseHeadersContentSecurityPolicy{
				ContentSecurityPolicy: SiteCSP(append(s.siteAPISources(), s.SignInOrigins()...), s.Props.StripePublishableKey != ""), Override: jsii.Bool(true),
			},
			StrictTransportSecurity: &awscloudfront.ResponseHeadersStrictTransportSecurity{
				AccessControlMaxAge: awscdk.Duration_Days(jsii.Number(730)), IncludeSubdomains: jsii.Bool(true), Override: jsii.Bool(true),
			},
			ContentTypeOptions: &awscloudfront.ResponseHeadersContentTypeOptions{Override: jsii.Bool(true)},
			ReferrerPolicy: &awscloudfront.ResponseHeadersReferrerPolicy{
				ReferrerPolicy: awscloudfront.HeadersReferrerPolicy_NO_REFERRER, Override: jsii.Bool(true),
			},
			FrameOptions: &awscloudfront.ResponseHeadersFrameOptions{FrameOption: awscloudfront.HeadersFrameOption_DENY, Override: jsii.Bool(true)},
		},
	})
	dist := &awscloudfront.DistributionProps{
		Comment:           jsii.String("lastunit storefront and dashboard (web/)"),
		DefaultRootObject: jsii.String("index.html"),
		PriceClass:        awscloudfront.PriceClass_PRICE_CLASS_100,
		EnableLogging:     jsii.Bool(true),
		LogBucket:         site.Logs,
		LogFilePrefix:     jsii.String("cloudfront/"),
		DefaultBehavior: &awscloudfront.BehaviorOptions{
			Origin:                awscloudfrontorigins.S3BucketOrigin_WithOriginAccessControl(site.Bucket, nil),
			ViewerProtocolPolicy:  awscloudfront.ViewerProtocolPolicy_REDIRECT_TO_HTTPS,
			AllowedMethods:        awscloudfront.AllowedMethods_ALLOW_GET_HEAD(),
			CachePolicy:           awscloudfront.CachePolicy_CACHING_OPTIMIZED(),
			ResponseHeadersPolicy: site.Headers,
			Compress:              jsii.Bool(true),
			FunctionAssociations: &[]*awscloudfront.FunctionAssociation{{
				Function: site.Rewrite, EventType: awscloudfront.FunctionEventType_VIEWER_REQUEST,
			}},
		},
	}
	if s.Props.SiteDomain != "" {
		// Only a certificate of one's own lets CloudFront refuse TLS 1.0 and 1.1: with the
		// default *.cloudfront.net certificate the minimum is TLSv1, whatever is asked.
		dist.DomainNames = jsii.Strings(s.Props.SiteDomain)
		dist.Certificate = awscertificatemanager.Certificate_FromCertificateArn(s.Stack, jsii.String("SiteCertificate"), jsii.String(s.Props.SiteCertificateArn))
		dist.MinimumProtocolVersion = awscloudfront.SecurityPolicyProtocol_TLS_V1_2_2021
	}
	site.Distribution = awscloudfront.NewDistribution(s.Stack, jsii.String("WebDistribution"), dist)
	s.Site = site
}

// siteHost is the pages' host name: Props.SiteDomain, else the distribution's domain.
func (s *Stack) siteHost() *string {
	if s.Props.SiteDomain != "" {
		return jsii.String(s.Props.SiteDomain)
	}
	return s.Site.Distribution.DistributionDomainName()
}

// siteOrigin is the pages' origin (https://<Props.SiteDomain or the distribution's domain>),
// nil without the site.
func (s *Stack) siteOrigin() *string {
	if s.Site == nil {
		return nil
	}
	return awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("https://"), s.siteHost()})
}

// corsPreflight lets the pages (another origin than the API) call the HTTP API: their origin
// only, the routes' methods, and the headers api.js sends. API Gateway answers the preflight
// OPTIONS itself. nil without the site.
func (s *Stack) corsPreflight() *awsapigatewayv2.CorsPreflightOptions {
	origin := s.siteOrigin()
	if origin == nil || s.Props.WAF { // with the WAF the API is on the pages' own origin (edge.go)
		return nil
	}
	return &awsapigatewayv2.CorsPreflightOptions{
		AllowOrigins: &[]*string{origin},
		AllowMethods: corsMethods(),
		AllowHeaders: jsii.Strings(CORSHeaders...),
		MaxAge:       awscdk.Duration_Hours(jsii.Number(1)),
	}
}

// CORSHeaders is what web/assets/api.js sends besides the simple headers.
var CORSHeaders = []string{"authorization", "content-type", "idempotency-key"}

// corsMethods is every method of HTTPRoutes, sorted.
func corsMethods() *[]awsapigatewayv2.CorsHttpMethod {
	seen := map[string]bool{}
	for _, r := range HTTPRoutes {
		seen[r.Method()] = true
	}
	names := make([]string, 0, len(seen))
	for m := range seen {
		names = append(names, m)
	}
	sort.Strings(names)
	out := make([]awsapigatewayv2.CorsHttpMethod, len(names))
	for i, m := range names {
		out[i] = awsapigatewayv2.CorsHttpMethod(m)
	}
	return &out
}

// deploySite uploads web/ (without SiteExclude) and a generated config.json (web.Config: the
// API endpoints, resolved at deploy time) and invalidates the distribution's cache.
func (s *Stack) deploySite() {
	config := map[string]any{
		"local":                  false,
		"stripe_publishable_key": s.Props.StripePublishableKey,
		// No trailing slash: api.js appends paths that start with "/".
		"api_base":      s.APIs.HTTP.ApiEndpoint(),
		"websocket_url": s.APIs.WebSocketStage.Url(),
		// Sign-in through Cognito's managed login (auth.go): the shoppers' and the admins' pools.
		"auth":       s.authConfig(false),
		"admin_auth": s.authConfig(true),
	}
	if s.Props.WAF { // the APIs through the pages' distribution and its web ACL (edge.go)
		config["api_base"] = s.siteOrigin()
		config["websocket_url"] = awscdk.Fn_Join(jsii.String(""), &[]*string{
			jsii.String("wss://"), s.siteHost(), jsii.String("/" + WebSocketStageName),
		})
	}
	s.Site.Deployment = awss3deployment.NewBucketDeployment(s.Stack, jsii.String("WebDeployment"), &awss3deployment.BucketDeploymentProps{
		DestinationBucket: s.Site.Bucket,
		Sources: &[]awss3deployment.ISource{
			awss3deployment.Source_Asset(jsii.String(s.Props.WebDir), &awss3assets.AssetOptions{Exclude: jsii.Strings(SiteExclude...)}),
			awss3deployment.Source_JsonData(jsii.String("config.json"), config, nil),
		},
		Distribution:      s.Site.Distribution,
		DistributionPaths: jsii.Strings("/*"),
		Prune:             jsii.Bool(true),
		// The CDK's upload function logs here, kept as long as the functions' logs.
		LogGroup: awslogs.NewLogGroup(s.Stack, jsii.String("WebDeploymentLogs"), &awslogs.LogGroupProps{
			Retention: retentions[s.Props.LogRetentionDays], RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		}),
	})
}
