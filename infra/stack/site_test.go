package stack

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// webUploadRole is the logical id of the role of the function behind the BucketDeployment
// custom resource (the CDK's, not one of Functions).
func (d cfnTemplate) webUploadRole(t *testing.T) string {
	t.Helper()
	deployments := d.ofType("Custom::CDKBucketDeployment")
	if len(deployments) != 1 {
		t.Fatalf("%d BucketDeployments, want 1", len(deployments))
	}
	for _, r := range deployments {
		fn := refs(r.Properties["ServiceToken"])
		if len(fn) != 1 {
			t.Fatalf("BucketDeployment ServiceToken %v", r.Properties["ServiceToken"])
		}
		if role := refs(d.Resources[fn[0]].Properties["Role"]); len(role) == 1 {
			return role[0]
		}
	}
	t.Fatal("the BucketDeployment's function has no role")
	return ""
}

// webConfigKeys is the json names of web.Config's fields, parsed from web/web.go.
func webConfigKeys(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../web/web.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "Config" {
			return true
		}
		for _, field := range ts.Type.(*ast.StructType).Fields.List {
			tag, _ := strconv.Unquote(field.Tag.Value)
			name, _, _ := strings.Cut(reflectTag(tag, "json"), ",")
			keys = append(keys, name)
		}
		return false
	})
	if len(keys) == 0 {
		t.Fatal("no web.Config in web/web.go")
	}
	sort.Strings(keys)
	return keys
}

func reflectTag(tag, key string) string { return reflect.StructTag(tag).Get(key) }

// stagedAsset returns the cloud assembly's staged asset directory that holds file.
func stagedAsset(t *testing.T, s *Stack, file string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(*awscdk.Stage_Of(s.Stack).Outdir(), "asset.*"))
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, file)); err == nil {
			return dir
		}
	}
	t.Fatalf("no staged asset holds %s", file)
	return ""
}

// TestSite: web/ in a private, encrypted, TLS-only bucket that only the distribution reads
// (Origin Access Control); the distribution serves index.html at /, dashboard.html at
// /dashboard, redirects to HTTPS; the upload deploys web/ without SiteExclude plus a
// config.json of web.Config's keys with the APIs' endpoints; the HTTP API allows the site's
// origin (CORS); the upload function's permissions stay on the site's and the asset bucket.
func TestSite(t *testing.T) {
	s, tp, d := synth(t)
	bucket := logicalID(s, s.Site.Bucket)
	dist := logicalID(s, s.Site.Distribution)
	siteOrigin := map[string]any{"Fn::Join": []any{"", []any{"https://", map[string]any{"Fn::GetAtt": []any{dist, "DomainName"}}}}}
	tests := []struct {
		name string
		typ  string
		want map[string]any
	}{
		{"bucket blocks public access, encrypted", "AWS::S3::Bucket", map[string]any{
			"PublicAccessBlockConfiguration": map[string]any{
				"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
			},
			"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{
				map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}},
			}},
			"WebsiteConfiguration": assertions.Match_Absent(),
		}},
		{"bucket refuses plain HTTP", "AWS::S3::BucketPolicy", map[string]any{
			"Bucket": map[string]any{"Ref": bucket},
			"PolicyDocument": assertions.Match_ObjectLike(props(map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(props(map[string]any{
					"Effect": "Deny", "Action": "s3:*", "Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
				})),
			})})),
		}},
		{"only this distribution reads the bucket", "AWS::S3::BucketPolicy", map[string]any{
			"Bucket": map[string]any{"Ref": bucket},
			"PolicyDocument": assertions.Match_ObjectLike(props(map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(props(map[string]any{
					"Effect": "Allow", "Action": "s3:GetObject", "Principal": map[string]any{"Service": "cloudfront.amazonaws.com"},
					"Condition": map[string]any{"StringEquals": map[string]any{"AWS:SourceArn": assertions.Match_ObjectLike(props(map[string]any{
						"Fn::Join": []any{"", assertions.Match_ArrayWith(&[]any{map[string]any{"Ref": dist}})},
					}))}},
				})),
			})})),
		}},
		{"origin access control", "AWS::CloudFront::OriginAccessControl", map[string]any{
			"OriginAccessControlConfig": assertions.Match_ObjectLike(props(map[string]any{
				"OriginAccessControlOriginType": "s3", "SigningBehavior": "always", "SigningProtocol": "sigv4",
			})),
		}},
		{"distribution", "AWS::CloudFront::Distribution", map[string]any{
			"DistributionConfig": assertions.Match_ObjectLike(props(map[string]any{
				"DefaultRootObject": "index.html",
				"Origins": []any{assertions.Match_ObjectLike(props(map[string]any{
					"DomainName":            map[string]any{"Fn::GetAtt": []any{bucket, "RegionalDomainName"}},
					"OriginAccessControlId": assertions.Match_ObjectLike(props(map[string]any{"Fn::GetAtt": assertions.Match_AnyValue()})),
					"S3OriginConfig":        map[string]any{"OriginAccessIdentity": ""},
				}))},
				"DefaultCacheBehavior": assertions.Match_ObjectLike(props(map[string]any{
					"ViewerProtocolPolicy": "redirect-to-https",
					"FunctionAssociations": []any{map[string]any{
						"EventType": "viewer-request", "FunctionARN": map[string]any{"Fn::GetAtt": []any{logicalID(s, s.Site.Rewrite), "FunctionARN"}},
					}},
				})),
			})),
		}},
		{"dashboard rewrite", "AWS::CloudFront::Function", map[string]any{
			"FunctionCode": SiteRewrite, "AutoPublish": true,
			"FunctionConfig": assertions.Match_ObjectLike(props(map[string]any{"Runtime": "cloudfront-js-2.0"})),
		}},
		{"deployment", "Custom::CDKBucketDeployment", map[string]any{
			"DestinationBucketName": map[string]any{"Ref": bucket},
			"DistributionId":        map[string]any{"Ref": dist},
			"DistributionPaths":     []any{"/*"},
			"Prune":                 true,
			"SourceMarkers": []any{map[string]any{}, map[string]any{
				"<<marker:0xbaba:0>>": map[string]any{"Fn::Join": []any{"", []any{
					`"`, map[string]any{"Fn::GetAtt": []any{logicalID(s, s.APIs.HTTP), "ApiEndpoint"}}, `"`,
				}}},
				"<<marker:0xbaba:1>>": map[string]any{"Fn::Join": []any{"", assertions.Match_ArrayWith(&[]any{
					`"wss://`, map[string]any{"Ref": logicalID(s, s.APIs.WebSocket)}, "/" + WebSocketStageName + `"`,
				})}},
			}},
		}},
		{"CORS for the site's origin", "AWS::ApiGatewayV2::Api", map[string]any{
			"Name": "lastunit-http",
			"CorsConfiguration": map[string]any{
				"AllowOrigins": []any{siteOrigin},
				"AllowMethods": []any{"DELETE", "GET", "POST", "PUT"},
				"AllowHeaders": []any{"authorization", "content-type", "idempotency-key"},
				"MaxAge":       3600,
			},
		}},
		{"no CORS on the WebSocket API", "AWS::ApiGatewayV2::Api", map[string]any{
			"ProtocolType": "WEBSOCKET", "CorsConfiguration": assertions.Match_Absent(),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			has(t, tt.name, func() { tp.HasResourceProperties(jsii.String(tt.typ), props(tt.want)) })
		})
	}
	has(t, "site url output", func() {
		tp.HasOutput(jsii.String("SiteUrl"), props(map[string]any{"Value": siteOrigin}))
	})

	t.Run("no public statement", func(t *testing.T) {
		for id, p := range d.ofType("AWS::S3::BucketPolicy") {
			for _, st := range p.Properties["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				st := st.(map[string]any)
				if st["Effect"] == "Allow" && st["Condition"] == nil {
					t.Errorf("%s allows %v without a condition", id, st["Action"])
				}
			}
		}
	})

	t.Run("deployed files", func(t *testing.T) {
		dir := stagedAsset(t, s, "dashboard.html")
		for _, want := range []string{"index.html", "dashboard.html", "assets/api.js", "assets/app.css", "assets/store.js", "assets/dashboard.js"} {
			if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
				t.Errorf("%s is not deployed", want)
			}
		}
		for _, not := range []string{"web.go", "headers.go", "screenshots"} {
			if _, err := os.Stat(filepath.Join(dir, not)); err == nil {
				t.Errorf("%s is deployed", not)
			}
		}
		_ = filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(path, ".go") {
				t.Errorf("Go source %s is deployed", strings.TrimPrefix(path, dir))
			}
			return nil
		})
	})

	t.Run("config.json", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(stagedAsset(t, s, "config.json"), "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		// The upload replaces each marker with its value as a JSON string (quotes included:
		// see the deployment's SourceMarkers), so the staged file holds them bare.
		var got map[string]any
		if err := json.Unmarshal(regexp.MustCompile(`<<marker:0xbaba:\d+>>`).ReplaceAll(raw, []byte(`"$0"`)), &got); err != nil {
			t.Fatalf("config.json: %v: %s", err, raw)
		}
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if want := webConfigKeys(t); !reflect.DeepEqual(keys, want) {
			t.Errorf("config.json keys %v, web.Config's %v", keys, want)
		}
		want := map[string]any{"local": false, "stripe_publishable_key": "pk_test_site",
			"api_base": "<<marker:0xbaba:0>>", "websocket_url": "<<marker:0xbaba:1>>"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("config.json %s, want %v", raw, want)
		}
	})

	t.Run("upload permissions", func(t *testing.T) {
		role := d.webUploadRole(t)
		for id, p := range d.ofType("AWS::IAM::Policy") {
			if !contains(refs(p.Properties["Roles"]), role) {
				continue
			}
			for _, st := range p.Properties["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				st := st.(map[string]any)
				for _, a := range strs(st["Action"]) {
					action := a.(string)
					for _, r := range strs(st["Resource"]) {
						raw, _ := json.Marshal(r)
						switch {
						case strings.HasPrefix(action, "cloudfront:"):
							if action != "cloudfront:CreateInvalidation" && action != "cloudfront:GetInvalidation" {
								t.Errorf("%s allows %s", id, action)
							}
						case strings.HasPrefix(action, "s3:"):
							ids := refs(r)
							if !(len(ids) == 1 && ids[0] == bucket) && !strings.Contains(string(raw), "cdk-hnb659fds-assets-") {
								t.Errorf("%s allows %s on %s, want the site's or the asset bucket", id, action, raw)
							}
						default:
							t.Errorf("%s allows %s", id, action)
						}
					}
				}
			}
		}
	})

	t.Run("rewrite", func(t *testing.T) {
		node, err := exec.LookPath("node")
		if err != nil {
			t.Skip("no node to run the CloudFront Function")
		}
		for uri, want := range map[string]string{
			"/dashboard": "/dashboard.html", "/dashboard/": "/dashboard.html", "/": "/",
			"/index.html": "/index.html", "/assets/app.css": "/assets/app.css", "/config.json": "/config.json",
		} {
			script := SiteRewrite + "\nprocess.stdout.write(handler({request: {uri: " + strconv.Quote(uri) + "}}).uri);"
			out, err := exec.Command(node, "-e", script).Output()
			if err != nil {
				t.Fatalf("node: %v", err)
			}
			if string(out) != want {
				t.Errorf("%s → %s, want %s", uri, out, want)
			}
		}
	})
}
