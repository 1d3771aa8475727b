package apigw

import (
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/shop"
)

// AdminGroup is the Cognito group whose members may use the admin routes.
const AdminGroup = "admin"

// Identity is the caller as the JWT authorizer saw it.
type Identity struct {
	UserID string
	Groups []string
}

// IsAdmin reports whether the caller is in the admin group.
func (i Identity) IsAdmin() bool {
	for _, g := range i.Groups {
		if g == AdminGroup {
			return true
		}
	}
	return false
}

// IdentityOf reads the caller from requestContext.authorizer.jwt.claims; a missing subject
// is unauthenticated, and one with a control character (or not UTF-8) is a bad request
// naming the field sub: the authorizer checked the signature, not what the subject holds.
func IdentityOf(ev events.APIGatewayV2HTTPRequest) (Identity, error) {
	a := ev.RequestContext.Authorizer
	if a == nil || a.JWT == nil || a.JWT.Claims["sub"] == "" {
		return Identity{}, shop.Errorf(shop.CodeUnauthenticated, "a bearer token is required")
	}
	if !shop.ValidText(a.JWT.Claims["sub"]) {
		return Identity{}, shop.Invalid("sub", "the token's sub must not contain control characters")
	}
	return Identity{UserID: a.JWT.Claims["sub"], Groups: ParseGroups(a.JWT.Claims["cognito:groups"])}, nil
}

// ParseGroups reads the cognito:groups claim as an HTTP API JWT authorizer passes it in
// requestContext.authorizer.jwt.claims, where every claim is a string: API Gateway writes an
// array claim as its elements joined by single spaces inside brackets, without quotes
// (["admin","billing"] arrives as "[admin billing]"). Cognito group names cannot contain
// whitespace, so splitting the inside on spaces gives the names back exactly, commas and
// quotes included. Any other value is a string claim, passed as it is: one group, the whole
// string. Membership is by exact name (see Identity.IsAdmin).
func ParseGroups(s string) []string {
	if s == "" {
		return nil
	}
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return []string{s}
	}
	var out []string
	for _, g := range strings.Split(s[1:len(s)-1], " ") {
		if g != "" {
			out = append(out, g)
		}
	}
	return out
}
