package apigw

import (
	"encoding/json"
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
// is unauthenticated.
func IdentityOf(ev events.APIGatewayV2HTTPRequest) (Identity, error) {
	a := ev.RequestContext.Authorizer
	if a == nil || a.JWT == nil || a.JWT.Claims["sub"] == "" {
		return Identity{}, shop.Errorf(shop.CodeUnauthenticated, "a bearer token is required")
	}
	return Identity{UserID: a.JWT.Claims["sub"], Groups: ParseGroups(a.JWT.Claims["cognito:groups"])}, nil
}

// ParseGroups reads a groups claim as API Gateway passes it: "[admin shoppers]", a JSON
// array, or a space- or comma-separated string.
func ParseGroups(s string) []string {
	s = strings.TrimSpace(s)
	var arr []string
	if strings.HasPrefix(s, `["`) && json.Unmarshal([]byte(s), &arr) == nil {
		return arr
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
}
