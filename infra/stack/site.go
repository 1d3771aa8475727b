package stack

import (
	"sort"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfront"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfrontorigins"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3deployment"
	"github.com/aws/jsii-runtime-go"
)

// SiteExclude is what of web/ is not deployed: the Go package that embeds the pages for the
// local runner, and the README's screenshots.
var SiteExclude = []string{"web.go", "screenshots"}

// SiteRewrite is the CloudFront Function (viewer request) that serves dashboard.html at
// /dashboard, as the local runner does (cmd/local/pages.go); / is the default root object.
const SiteRewrite = `function handler(event) {
  var r = event.request;
  if (r.uri === "/dashboard" || r.uri === "/dashboard/") { r.uri = "/dashboard.html"; }
  return r;
}`

// Site is the static pages (web/) in a private bucket behind CloudFront.
type Site struct {
	Bucket       awss3.Bucket
	Distribution awscloudfront.Distribution
	Rewrite      awscloudfront.Function
	Deployment   awss3deployment.BucketDeployment
}

// withSite says whether the stack deploys the pages. Not in LocalStack: CloudFront and the
// BucketDeployment's Lambda layer need LocalStack Pro, and the local runner serves the pages.
func (p Props) withSite() bool { return !p.LocalStack }

// newSite builds the bucket (private, encrypted, TLS only) and the distribution that reads it
// through Origin Access Control. Before the HTTP API: its CORS allows the distribution's origin.
func (s *Stack) newSite() {
	site := &Site{}
	site.Bucket = awss3.NewBucket(s.Stack, jsii.String("WebBucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		// Kept when the stack is deleted (CDK's default): emptying it would take another
		// custom-resource function; its content is rebuilt by any deploy.
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	site.Rewrite = awscloudfront.NewFunction(s.Stack, jsii.String("WebRewrite"), &awscloudfront.FunctionProps{
		Comment: jsii.String("lastunit: /dashboard -> /dashboard.html"),
		Code:    awscloudfront.FunctionCode_FromInline(jsii.String(SiteRewrite)),
		Runtime: awscloudfront.FunctionRuntime_JS_2_0(),
	})
	site.Distribution = awscloudfront.NewDistribution(s.Stack, jsii.String("WebDistribution"), &awscloudfront.DistributionProps{
		Comment:           jsii.String("lastunit storefront and dashboard (web/)"),
		DefaultRootObject: jsii.String("index.html"),
		PriceClass:        awscloudfront.PriceClass_PRICE_CLASS_100,
		DefaultBehavior: &awscloudfront.BehaviorOptions{
			Origin:               awscloudfrontorigins.S3BucketOrigin_WithOriginAccessControl(site.Bucket, nil),
			ViewerProtocolPolicy: awscloudfront.ViewerProtocolPolicy_REDIRECT_TO_HTTPS,
			AllowedMethods:       awscloudfront.AllowedMethods_ALLOW_GET_HEAD(),
			CachePolicy:          awscloudfront.CachePolicy_CACHING_OPTIMIZED(),
			Compress:             jsii.Bool(true),
			FunctionAssociations: &[]*awscloudfront.FunctionAssociation{{
				Function: site.Rewrite, EventType: awscloudfront.FunctionEventType_VIEWER_REQUEST,
			}},
		},
	})
	s.Site = site
}

// siteOrigin is the pages' origin (https://<distribution domain>), nil without the site.
func (s *Stack) siteOrigin() *string {
	if s.Site == nil {
		return nil
	}
	return awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("https://"), s.Site.Distribution.DistributionDomainName()})
}

// corsPreflight lets the pages (another origin than the API) call the HTTP API: their origin
// only, the routes' methods, and the headers api.js sends. API Gateway answers the preflight
// OPTIONS itself. nil without the site.
func (s *Stack) corsPreflight() *awsapigatewayv2.CorsPreflightOptions {
	origin := s.siteOrigin()
	if origin == nil {
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
