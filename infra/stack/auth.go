package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscognito"
	"github.com/aws/jsii-runtime-go"
)

// Signing in (README "Deploying to AWS", "Who signs in where"). Two user pools:
//
//   - the shoppers' pool (`<prefix>-users`): self sign-up with a verified e-mail, no admin
//     group; its web client's tokens pass the JWT authorizer of the shopper routes and the
//     WebSocket's ?token= check;
//   - the admins' pool (`<prefix>-admins`): no self sign-up (an operator creates each admin),
//     MFA required (an authenticator app, TOTP), the `admin` group; its web client's tokens pass
//     only the second JWT authorizer, the one on the admin routes, and the admin function
//     checks the group as well.
//
// So a shopper who signs up never gets near the admin routes: no group to be put in by
// mistake, and a token of the shoppers' pool is refused by the admin routes' authorizer. Both
// pages sign in through Cognito's managed login with the authorization code flow and PKCE
// (web/assets/auth.js); each pool has a Cognito domain, and its client's callback and
// sign-out URLs are the page's URL on the distribution.

// SignInScopes are the OAuth scopes the pages ask for.
var SignInScopes = []string{"openid", "email", "profile"}

// DomainPrefixContext is the CDK context key for the Cognito domains' prefix (default
// "<prefix>-<account id>"; the admins' domain adds "-admin"). Cognito domain prefixes are
// unique per region across all accounts.
const DomainPrefixContext = "authDomainPrefix"

// newIdentity builds both user pools and their web clients (public: no secret). The shoppers'
// client allows SRP and USER_PASSWORD_AUTH (the CLI's initiate-auth); the admins' client SRP
// only, so an admin's password never travels to Cognito, not even inside TLS. The admins'
// pool is on the Plus feature plan with threat protection enforced (compromised credentials,
// adaptive authentication: a risky sign-in is blocked); the shoppers' pool stays on
// Essentials, whose price does not grow with a drop's crowd (docs/deploy-checks.md). Both
// pools require upper and lower case letters, digits and symbols. The clients' OAuth settings
// name the pages' URLs, so they are completed by newSignIn once the distribution exists;
// without the site (LocalStack) the clients have no OAuth flow at all.
func newIdentity(s awscdk.Stack, prefix string, withSite bool) *APIs {
	a := &APIs{}
	password := func(min float64) *awscognito.PasswordPolicy {
		return &awscognito.PasswordPolicy{
			MinLength: jsii.Number(min), RequireDigits: jsii.Bool(true), RequireLowercase: jsii.Bool(true),
			RequireUppercase: jsii.Bool(true), RequireSymbols: jsii.Bool(true),
		}
	}
	a.UserPool = awscognito.NewUserPool(s, jsii.String("Users"), &awscognito.UserPoolProps{
		UserPoolName:      name(prefix, "users"),
		SelfSignUpEnabled: jsii.Bool(true),
		SignInAliases:     &awscognito.SignInAliases{Email: jsii.Bool(true)},
		AutoVerify:        &awscognito.AutoVerifiedAttrs{Email: jsii.Bool(true)},
		AccountRecovery:   awscognito.AccountRecovery_EMAIL_ONLY,
		Mfa:               awscognito.Mfa_OFF, // shoppers: e-mail and password (the admins' pool requires MFA)
		PasswordPolicy:    password(12),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN, // user accounts outlive a stack
	})
	a.AdminPool = awscognito.NewUserPool(s, jsii.String("Admins"), &awscognito.UserPoolProps{
		UserPoolName:      name(prefix, "admins"),
		SelfSignUpEnabled: jsii.Bool(false), // only `aws cognito-idp admin-create-user`
		SignInAliases:     &awscognito.SignInAliases{Email: jsii.Bool(true)},
		AutoVerify:        &awscognito.AutoVerifiedAttrs{Email: jsii.Bool(true)},
		AccountRecovery:   awscognito.AccountRecovery_EMAIL_ONLY,
		Mfa:               awscognito.Mfa_REQUIRED,
		MfaSecondFactor:   &awscognito.MfaSecondFactor{Otp: jsii.Bool(true), Sms: jsii.Bool(false)},
		PasswordPolicy:    password(14),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		// Threat protection needs the Plus plan; a handful of admins costs little on it.
		FeaturePlan:                  awscognito.FeaturePlan_PLUS,
		StandardThreatProtectionMode: awscognito.StandardThreatProtectionMode_FULL_FUNCTION,
	})
	client := func(pool awscognito.UserPool, id, suffix string, passwordAuth bool) awscognito.UserPoolClient {
		opts := &awscognito.UserPoolClientOptions{
			UserPoolClientName:         name(prefix, suffix),
			AuthFlows:                  &awscognito.AuthFlow{UserSrp: jsii.Bool(true), UserPassword: jsii.Bool(passwordAuth)},
			GenerateSecret:             jsii.Bool(false),
			PreventUserExistenceErrors: jsii.Bool(true),
			AccessTokenValidity:        awscdk.Duration_Hours(jsii.Number(1)),
			IdTokenValidity:            awscdk.Duration_Hours(jsii.Number(1)),
			RefreshTokenValidity:       awscdk.Duration_Days(jsii.Number(30)),
			EnableTokenRevocation:      jsii.Bool(true),
			DisableOAuth:               jsii.Bool(!withSite),
		}
		if withSite {
			// The code flow only (no implicit grant); the URLs are set by newSignIn.
			opts.OAuth = &awscognito.OAuthSettings{
				Flows:        &awscognito.OAuthFlows{AuthorizationCodeGrant: jsii.Bool(true)},
				Scopes:       &[]awscognito.OAuthScope{awscognito.OAuthScope_OPENID(), awscognito.OAuthScope_EMAIL(), awscognito.OAuthScope_PROFILE()},
				CallbackUrls: jsii.Strings("https://localhost/"), // replaced by newSignIn
				LogoutUrls:   jsii.Strings("https://localhost/"),
			}
			opts.SupportedIdentityProviders = &[]awscognito.UserPoolClientIdentityProvider{awscognito.UserPoolClientIdentityProvider_COGNITO()}
		}
		return pool.AddClient(jsii.String(id), opts)
	}
	a.UserPoolClient = client(a.UserPool, "WebClient", "web", true) // USER_PASSWORD_AUTH: the CLI's initiate-auth
	a.AdminClient = client(a.AdminPool, "AdminWebClient", "admin-web", false)
	awscognito.NewCfnUserPoolGroup(s, jsii.String("AdminGroup"), &awscognito.CfnUserPoolGroupProps{
		UserPoolId:  a.AdminPool.UserPoolId(),
		GroupName:   jsii.String(AdminGroup),
		Description: jsii.String("lastunit admins: the /admin routes (the functions check the group too)"),
	})
	return a
}

// adminAuthorizer is the JWT authorizer of the admin routes: the admins' pool and its client.
func (s *Stack) adminAuthorizer() awsapigatewayv2authorizers.HttpUserPoolAuthorizer {
	return awsapigatewayv2authorizers.NewHttpUserPoolAuthorizer(jsii.String("AdminAuthorizer"), s.APIs.AdminPool,
		&awsapigatewayv2authorizers.HttpUserPoolAuthorizerProps{
			AuthorizerName:  name(s.Props.Prefix, "cognito-admins"),
			UserPoolClients: &[]awscognito.IUserPoolClient{s.APIs.AdminClient},
			IdentitySource:  jsii.Strings("$request.header.Authorization"),
		})
}

// domainPrefix is the shoppers' Cognito domain prefix; the admins' is it plus "-admin".
func (s *Stack) domainPrefix() *string {
	if v, ok := s.Stack.Node().TryGetContext(jsii.String(DomainPrefixContext)).(string); ok && v != "" {
		return jsii.String(v)
	}
	return awscdk.Fn_Join(jsii.String("-"), &[]*string{jsii.String(s.Props.Prefix), awscdk.Aws_ACCOUNT_ID()})
}

// signInOrigin is a pool's managed login origin, https://<prefix>.auth.<region>.amazoncognito.com,
// built from strings (not from the domain resource) so that the pages' headers may name it
// without depending on the pool.
func (s *Stack) signInOrigin(admin bool) *string {
	suffix := ""
	if admin {
		suffix = "-admin"
	}
	return awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("https://"), s.domainPrefix(), jsii.String(suffix + ".auth."), awscdk.Aws_REGION(), jsii.String(".amazoncognito.com"),
	})
}

// SignInOrigins are the two managed login origins: the pages fetch their /oauth2/token, so a
// Content-Security-Policy on the pages must allow them in connect-src.
func (s *Stack) SignInOrigins() []*string {
	if s.APIs == nil || !s.Props.withSite() {
		return nil
	}
	return []*string{s.signInOrigin(false), s.signInOrigin(true)}
}

// pagePaths are each client's page on the distribution.
const (
	storePath     = "/"
	dashboardPath = "/dashboard"
)

// newSignIn gives each pool a Cognito domain with managed login (and Cognito's default
// style for the client, which managed login needs), and points each client's callback and
// sign-out URLs at its page on the distribution. After newSite.
func (s *Stack) newSignIn() {
	origin := s.siteOrigin()
	for _, p := range []struct {
		id     string
		pool   awscognito.UserPool
		client awscognito.UserPoolClient
		admin  bool
		path   string
	}{
		{"Users", s.APIs.UserPool, s.APIs.UserPoolClient, false, storePath},
		{"Admins", s.APIs.AdminPool, s.APIs.AdminClient, true, dashboardPath},
	} {
		prefix := s.domainPrefix()
		if p.admin {
			prefix = awscdk.Fn_Join(jsii.String(""), &[]*string{prefix, jsii.String("-admin")})
		}
		p.pool.AddDomain(jsii.String(p.id+"Domain"), &awscognito.UserPoolDomainOptions{
			CognitoDomain:       &awscognito.CognitoDomainOptions{DomainPrefix: prefix},
			ManagedLoginVersion: awscognito.ManagedLoginVersion_NEWER_MANAGED_LOGIN,
		})
		awscognito.NewCfnManagedLoginBranding(s.Stack, jsii.String(p.id+"LoginStyle"), &awscognito.CfnManagedLoginBrandingProps{
			UserPoolId: p.pool.UserPoolId(), ClientId: p.client.UserPoolClientId(), UseCognitoProvidedValues: jsii.Bool(true),
		})
		page := awscdk.Fn_Join(jsii.String(""), &[]*string{origin, jsii.String(p.path)})
		cfn := p.client.Node().DefaultChild().(awscognito.CfnUserPoolClient)
		cfn.SetCallbackUrLs(&[]*string{page})
		cfn.SetLogoutUrLs(&[]*string{page})
	}
}

// authConfig is config.json's "auth" (the storefront) or "admin_auth" (the dashboard): the
// keys of web.AuthConfig.
func (s *Stack) authConfig(admin bool) map[string]any {
	client, path := s.APIs.UserPoolClient, storePath
	if admin {
		client, path = s.APIs.AdminClient, dashboardPath
	}
	login := s.signInOrigin(admin)
	at := func(p string) *string { return awscdk.Fn_Join(jsii.String(""), &[]*string{login, jsii.String(p)}) }
	page := awscdk.Fn_Join(jsii.String(""), &[]*string{s.siteOrigin(), jsii.String(path)})
	scope := ""
	for i, sc := range SignInScopes {
		if i > 0 {
			scope += " "
		}
		scope += sc
	}
	return map[string]any{
		"authorize_url": at("/oauth2/authorize"),
		"token_url":     at("/oauth2/token"),
		"logout_url":    at("/logout"),
		"client_id":     client.UserPoolClientId(),
		"redirect_uri":  page,
		"logout_uri":    page,
		"scope":         scope,
	}
}

// newSignInOutputs exports the admins' pool and client and both sign-in origins.
func (s *Stack) newSignInOutputs() {
	out := func(id, desc string, value *string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Value: value, Description: jsii.String(desc)})
	}
	out("AdminUserPoolId", "Cognito user pool of the admins (no self sign-up, MFA required)", s.APIs.AdminPool.UserPoolId())
	out("AdminUserPoolClientId", "Cognito web client of the dashboard (the admin routes' JWT audience)", s.APIs.AdminClient.UserPoolClientId())
	if s.Site != nil {
		out("SignInUrl", "managed login of the shoppers' pool", s.signInOrigin(false))
		out("AdminSignInUrl", "managed login of the admins' pool", s.signInOrigin(true))
	}
}
