package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultJWTSecret is the local runner's HS256 secret when LOCAL_JWT_SECRET is not set.
const DefaultJWTSecret = "lastunit-local-secret"

// verifyToken checks an HS256 bearer token the way the HTTP API's JWT authorizer would
// (signature, exp required) and returns its claims as API Gateway passes them to a function:
// strings as they are, numbers in decimal, arrays as "[a b]".
func verifyToken(secret []byte, header string) (map[string]string, error) {
	raw, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || raw == "" {
		return nil, errors.New("missing bearer token")
	}
	tok, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		return nil, err
	}
	mc, ok := tok.Claims.(jwt.MapClaims)
	if !ok {
		return nil, errors.New("unexpected claims")
	}
	if g, ok := mc["cognito:groups"]; ok {
		if err := checkGroups(g); err != nil {
			return nil, err
		}
	}
	out := make(map[string]string, len(mc))
	for k, v := range mc {
		out[k] = claimString(v)
	}
	if out["sub"] == "" {
		return nil, errors.New("token has no sub")
	}
	return out, nil
}

// checkGroups accepts a cognito:groups claim only as Cognito issues it: an array of group
// names, each 1 to 128 characters without whitespace. API Gateway passes an array claim as
// "[a b]", which only splits back into the same names when no name holds a space: a token
// with the group "not admin" would otherwise reach the functions as the groups "not" and
// "admin".
func checkGroups(v any) error {
	arr, ok := v.([]any)
	if !ok {
		return errors.New("cognito:groups is not an array")
	}
	for _, g := range arr {
		s, ok := g.(string)
		if !ok || !validGroup(s) {
			return errors.New("cognito:groups holds an invalid group name")
		}
	}
	return nil
}

// validGroup reports whether name could be a Cognito group name: 1 to 128 characters, valid
// UTF-8, no whitespace.
func validGroup(name string) bool {
	return name != "" && utf8.RuneCountInString(name) <= 128 && utf8.ValidString(name) && !strings.ContainsFunc(name, unicode.IsSpace)
}

func claimString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = claimString(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	default:
		return fmt.Sprint(x)
	}
}

// mintToken signs a dev token for sub with groups, valid for ttl.
func mintToken(secret []byte, sub string, groups []string, ttl time.Duration, now time.Time) (string, error) {
	claims := jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "iss": "lastunit-local"}
	if len(groups) > 0 {
		claims["cognito:groups"] = groups
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// tokenCache remembers verified tokens until they expire, so a shopper's many requests pay
// for one HMAC check. It forgets everything when it grows past maxCached.
type tokenCache struct {
	mu     sync.Mutex
	tokens map[string]cachedToken
}

type cachedToken struct {
	claims map[string]string
	exp    time.Time
}

const maxCached = 100_000

func (c *tokenCache) verify(secret []byte, header string, now time.Time) (map[string]string, error) {
	c.mu.Lock()
	t, ok := c.tokens[header]
	c.mu.Unlock()
	if ok && now.Before(t.exp) {
		return t.claims, nil
	}
	claims, err := verifyToken(secret, header)
	if err != nil {
		return nil, err
	}
	exp, err := strconv.ParseInt(claims["exp"], 10, 64)
	if err != nil {
		return claims, nil
	}
	c.mu.Lock()
	if c.tokens == nil || len(c.tokens) >= maxCached {
		c.tokens = map[string]cachedToken{}
	}
	c.tokens[header] = cachedToken{claims: claims, exp: time.Unix(exp, 0)}
	c.mu.Unlock()
	return claims, nil
}
