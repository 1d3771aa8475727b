package main

import (
	"crypto/sha256"
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
	return gatewayClaims(mc)
}

// gatewayClaims checks the claims every token needs (exact groups, a sub) and turns them into
// the strings API Gateway passes to the functions.
func gatewayClaims(mc jwt.MapClaims) (map[string]string, error) {
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

// mintToken signs a dev token for sub with groups, valid for ttl: an access token, as the
// WebSocket requires (jwtauth).
func mintToken(secret []byte, sub string, groups []string, ttl time.Duration, now time.Time) (string, error) {
	claims := jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "iss": "lastunit-local", "token_use": "access"}
	if len(groups) > 0 {
		claims["cognito:groups"] = groups
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// tokenCache remembers verified tokens until they expire, so a shopper's many requests pay
// for one HMAC check. It is keyed by the SHA-256 of the Authorization header, so a long token
// costs 32 bytes of key, and it holds at most maxCachedBytes of claims (counted as their
// keys' and values' lengths plus an overhead per entry): past that, or past maxCached
// entries, it forgets everything. A token whose claims alone exceed maxCachedEntry is
// verified every time and never kept.
type tokenCache struct {
	mu     sync.Mutex
	tokens map[[sha256.Size]byte]cachedToken
	bytes  int
}

type cachedToken struct {
	claims map[string]string
	exp    time.Time
	size   int
}

const (
	maxCached      = 100_000
	maxCachedBytes = 16 << 20
	maxCachedEntry = 4 << 10
	entryOverhead  = 128 // map entry, key, expiry and the claims map's header, roughly
)

func (c *tokenCache) verify(secret []byte, header string, now time.Time) (map[string]string, error) {
	key := sha256.Sum256([]byte(header))
	c.mu.Lock()
	t, ok := c.tokens[key]
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
	size := entryOverhead
	for k, v := range claims {
		size += len(k) + len(v) + 32
	}
	if size > maxCachedEntry {
		return claims, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.tokens[key]; ok {
		c.bytes -= old.size
	}
	if c.tokens == nil || len(c.tokens) >= maxCached || c.bytes+size > maxCachedBytes {
		c.tokens, c.bytes = map[[sha256.Size]byte]cachedToken{}, 0
	}
	c.tokens[key] = cachedToken{claims: claims, exp: time.Unix(exp, 0), size: size}
	c.bytes += size
	return claims, nil
}

// usage reports how many tokens the cache holds and the bytes it counts for them.
func (c *tokenCache) usage() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.tokens), c.bytes
}
