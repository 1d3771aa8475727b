package stack

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestSignIn: admins are kept out of the self-sign-up pool. The shoppers' pool lets anyone
// sign up and has no group; the admins' pool has no self sign-up, requires MFA (TOTP only)
// and holds the admin group; the admin routes' JWT authorizer takes only the admins' pool and
// its client, the other protected routes' only the shoppers'. Both clients sign in through a
// Cognito domain with managed login, the code flow only, openid email profile, and their
// page on the distribution as callback and sign-out URL. The admins' client allows SRP only
// (no USER_PASSWORD_AUTH) and their pool enforces threat protection (the Plus plan); both
// pools' passwords need upper and lower case, digits and symbols.
func TestSignIn(t *testing.T) {
	s, tp, d := synth(t)
	users, admins := logicalID(s, s.APIs.UserPool), logicalID(s, s.APIs.AdminPool)
	webClient, adminClient := logicalID(s, s.APIs.UserPoolClient), logicalID(s, s.APIs.AdminClient)
	dist := logicalID(s, s.Site.Distribution)
	page := func(path string) []any {
		return []any{map[string]any{"Fn::Join": []any{"", []any{"https://", map[string]any{"Fn::GetAtt": []any{dist, "DomainName"}}, path}}}}
	}
	issuer := func(pool string) map[string]any {
		return map[string]any{"Fn::Join": []any{"", []any{"https://cognito-idp.", map[string]any{"Ref": "AWS::Region"}, ".amazonaws.com/", map[string]any{"Ref": pool}}}}
	}
	tests := []struct {
		name string
		typ  string
		want map[string]any
	}{
		{"shoppers sign up themselves, no MFA", "AWS::Cognito::UserPool", map[string]any{
			"UserPoolName":          "lastunit-users",
			"AdminCreateUserConfig": map[string]any{"AllowAdminCreateUserOnly": false},
			"MfaConfiguration":      "OFF",
		}},
		{"admins cannot sign up and need MFA (TOTP)", "AWS::Cognito::UserPool", map[string]any{
			"UserPoolName":          "lastunit-admins",
			"AdminCreateUserConfig": map[string]any{"AllowAdminCreateUserOnly": true},
			"MfaConfiguration":      "ON",
			"EnabledMfas":           []any{"SOFTWARE_TOKEN_MFA"},
		}},
		{"shopper authorizer", "AWS::ApiGatewayV2::Authorizer", map[string]any{
			"AuthorizerType": "JWT",
			"JwtConfiguration": map[string]any{
				"Audience": []any{map[string]any{"Ref": webClient}}, "Issuer": issuer(users),
			},
		}},
		{"admin authorizer", "AWS::ApiGatewayV2::Authorizer", map[string]any{
			"AuthorizerType": "JWT", "IdentitySource": []any{"$request.header.Authorization"},
			"JwtConfiguration": map[string]any{
				"Audience": []any{map[string]any{"Ref": adminClient}}, "Issuer": issuer(admins),
			},
		}},
	}
	for _, c := range []struct {
		name, pool, client, path string
	}{{"storefront", users, webClient, "/"}, {"dashboard", admins, adminClient, "/dashboard"}} {
		tests = append(tests,
			struct {
				name string
				typ  string
				want map[string]any
			}{c.name + " client: code flow, its page", "AWS::Cognito::UserPoolClient", map[string]any{
				"UserPoolId":                      map[string]any{"Ref": c.pool},
				"GenerateSecret":                  false,
				"AllowedOAuthFlows":               []any{"code"},
				"AllowedOAuthFlowsUserPoolClient": true,
				"AllowedOAuthScopes":              assertions.Match_ArrayEquals(&[]any{"openid", "email", "profile"}),
				"CallbackURLs":                    page(c.path),
				"LogoutURLs":                      page(c.path),
				"SupportedIdentityProviders":      []any{"COGNITO"},
			}},
			struct {
				name string
				typ  string
				want map[string]any
			}{c.name + " managed login domain", "AWS::Cognito::UserPoolDomain", map[string]any{
				"UserPoolId": map[string]any{"Ref": c.pool}, "ManagedLoginVersion": 2.0,
			}},
			struct {
				name string
				typ  string
				want map[string]any
			}{c.name + " managed login style", "AWS::Cognito::ManagedLoginBranding", map[string]any{
				"UserPoolId": map[string]any{"Ref": c.pool}, "ClientId": map[string]any{"Ref": c.client}, "UseCognitoProvidedValues": true,
			}},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			has(t, tt.name, func() { tp.HasResourceProperties(jsii.String(tt.typ), props(tt.want)) })
		})
	}
	has(t, "one group, in the admins' pool", func() { tp.ResourceCountIs(jsii.String("AWS::Cognito::UserPoolGroup"), jsii.Number(1)) })
	has(t, "two pools", func() { tp.ResourceCountIs(jsii.String("AWS::Cognito::UserPool"), jsii.Number(2)) })

	t.Run("no implicit grant", func(t *testing.T) {
		for id, c := range d.ofType("AWS::Cognito::UserPoolClient") {
			raw, _ := json.Marshal(c.Properties["AllowedOAuthFlows"])
			if strings.Contains(string(raw), "implicit") || strings.Contains(string(raw), "client_credentials") {
				t.Errorf("%s allows %s", id, raw)
			}
		}
	})

	t.Run("domains: the admins' adds -admin", func(t *testing.T) {
		var prefixes []string
		for _, dom := range d.ofType("AWS::Cognito::UserPoolDomain") {
			raw, _ := json.Marshal(dom.Properties["Domain"])
			prefixes = append(prefixes, string(raw))
		}
		sort.Strings(prefixes)
		if len(prefixes) != 2 || !strings.Contains(prefixes[0]+prefixes[1], `"-admin"`) || !strings.Contains(prefixes[0]+prefixes[1], `"AWS::AccountId"`) {
			t.Errorf("domains %v: want <prefix>-<account> and <prefix>-<account>-admin", prefixes)
		}
	})

	// Each protected route has the authorizer of its pool: admin routes the admins', the
	// others the shoppers'.
	authorizerOf := map[string]string{} // authorizer logical id → pool
	for id, a := range d.ofType("AWS::ApiGatewayV2::Authorizer") {
		raw, _ := json.Marshal(a.Properties["JwtConfiguration"])
		switch {
		case strings.Contains(string(raw), `"`+admins+`"`):
			authorizerOf[id] = admins
		case strings.Contains(string(raw), `"`+users+`"`):
			authorizerOf[id] = users
		}
	}
	for _, r := range HTTPRoutes {
		if r.Access == Public {
			continue
		}
		want := users
		if r.Access == Admin {
			want = admins
		}
		t.Run("authorizer "+r.Key, func(t *testing.T) {
			found := false
			for _, route := range d.ofType("AWS::ApiGatewayV2::Route") {
				if route.Properties["RouteKey"] != r.Key || refs(route.Properties["ApiId"])[0] != logicalID(s, s.APIs.HTTP) {
					continue
				}
				found = true
				ids := refs(route.Properties["AuthorizerId"])
				if len(ids) != 1 || authorizerOf[ids[0]] != want {
					t.Errorf("%s is authorized by %v (pool %s), want the pool %s", r.Key, ids, authorizerOf[ids[0]], want)
				}
			}
			if !found {
				t.Fatalf("no route %s", r.Key)
			}
		})
	}
	// The outside review: the admins' client signs in by SRP only (no USER_PASSWORD_AUTH), the
	// admins' pool has threat protection enforced (the Plus plan); both pools want symbols too.
	t.Run("auth flows", func(t *testing.T) {
		want := map[string][]string{
			webClient:   {"ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH"},
			adminClient: {"ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"},
		}
		for id, flows := range want {
			got := map[string]bool{}
			for _, f := range asList(d.Resources[id].Properties["ExplicitAuthFlows"]) {
				got[fmt.Sprint(f)] = true
			}
			if strings.Join(sorted(got), " ") != strings.Join(flows, " ") {
				t.Errorf("%s allows %v, want %v", id, sorted(got), flows)
			}
		}
	})
	t.Run("threat protection on the admins' pool", func(t *testing.T) {
		has(t, "admins", func() {
			tp.HasResourceProperties(jsii.String("AWS::Cognito::UserPool"), props(map[string]any{
				"UserPoolName": "lastunit-admins", "UserPoolTier": "PLUS",
				"UserPoolAddOns": map[string]any{"AdvancedSecurityMode": "ENFORCED"},
			}))
		})
	})
	t.Run("password policies", func(t *testing.T) {
		for pool, min := range map[string]float64{users: 12, admins: 14} {
			pp, _ := d.Resources[pool].Properties["Policies"].(map[string]any)["PasswordPolicy"].(map[string]any)
			for _, k := range []string{"RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"} {
				if pp[k] != true {
					t.Errorf("%s: %s is %v", pool, k, pp[k])
				}
			}
			if pp["MinimumLength"] != min {
				t.Errorf("%s: minimum length %v, want %v", pool, pp["MinimumLength"], min)
			}
		}
	})
	t.Run("the sign-in origins match the domains", func(t *testing.T) {
		for _, o := range s.SignInOrigins() {
			raw, _ := json.Marshal(s.Stack.Resolve(o))
			if !strings.Contains(string(raw), ".amazoncognito.com") || !strings.Contains(string(raw), `"AWS::AccountId"`) {
				t.Errorf("sign-in origin %s", raw)
			}
		}
	})
}
