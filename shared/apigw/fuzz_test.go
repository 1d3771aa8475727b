package apigw_test

import (
	"encoding/json"
	"errors"
	"mime"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"lastunit/shared/apigw"
	"lastunit/shared/handler"
	"lastunit/shared/shop"
)

// FuzzDecodeJSON: whatever the content type and body, DecodeJSON never panics and answers
// nil or a client error of the three kinds a body can cause; it accepts only what is one
// JSON value sent as JSON, and refuses every body over the limit.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{"application/json", `{"product_id":"p1","quantity":2}`},
		{"application/json; charset=utf-8", `{"product_id":"p1"}`},
		{"application/json", ``},
		{"", `{}`},
		{"text/plain", `{"product_id":"p1"}`},
		{"application/json", `{"product_id":"p1","quantity":2}]`},
		{"application/json", `{"product_id":"p1"} {"quantity":1}`},
		{"application/json", `{"quantity":1e400}`},
		{"application/json", `{"quantity":"2"}`},
		{"application/json", `{"quantity":2.5}`},
		{"application/json", `{"product_id":5}`},
		{"application/json", `{"coupon":"x"}`},
		{"application/json", `[1,2,3]`},
		{"application/json", `null`},
		{"application/json", "{\"product_id\":\"\xff\"}"},
		{"Application/JSON", ` {"quantity": -1} `},
		{"application/json", `{"quantity":1,"quantity":2}`},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		var v handler.ReserveRequest
		err := apigw.DecodeJSON(contentType, body, &v)
		blank := strings.TrimSpace(string(body)) == ""
		if len(body) > apigw.MaxBody {
			if shop.ErrorCode(err) != shop.CodePayloadTooLarge {
				t.Fatalf("%d bytes: got %v, want payload_too_large", len(body), err)
			}
			return
		}
		if err == nil {
			if blank {
				return
			}
			if mt, _, perr := mime.ParseMediaType(contentType); perr != nil || mt != "application/json" {
				t.Fatalf("accepted a body sent as %q", contentType)
			}
			if !json.Valid(body) {
				t.Fatalf("accepted a body that is not one JSON value: %q", body)
			}
			return
		}
		var e *shop.Error
		if !errors.As(err, &e) {
			t.Fatalf("error is not a *shop.Error: %T %v", err, err)
		}
		switch e.Code {
		case shop.CodeInvalidRequest:
		case shop.CodeUnsupportedMediaType:
			if blank {
				t.Fatalf("a blank body is not a media type problem: %v", err)
			}
		default:
			t.Fatalf("code %q for a body of %d bytes: %v", e.Code, len(body), err)
		}
		if e.Message == "" || e.Err != nil {
			t.Fatalf("a body error must carry a message and no internal cause: %#v", e)
		}
		if f, ok := e.Details["field"]; ok {
			s, _ := f.(string)
			switch {
			case s == "product_id" || s == "quantity":
			case s != "" && utf8.ValidString(s) && strings.HasPrefix(e.Message, "unknown field "):
			default:
				t.Fatalf("details.field %#v (%s) for body %q", f, e.Message, body)
			}
		}
	})
}

// FuzzParseGroups: API Gateway writes an array claim as "[" + the elements joined by single
// spaces + "]". For any list of Cognito-valid group names (non-empty, no whitespace; commas,
// quotes and brackets allowed) that form parses back to exactly the list, so admin comes only
// from a group named exactly "admin". Any value that is not bracketed is one group.
func FuzzParseGroups(f *testing.F) {
	for _, s := range []string{
		"admin\x00shoppers", "not admin", "billing,admin", `"admin"`, `["admin"]`, "[admin", "admin]",
		"administrators", "", "\x00", "admin", "[[admin]\x00x", ",admin,", "\u00a0admin",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var groups []string
		for _, g := range strings.Split(in, "\x00") {
			if g != "" && !strings.ContainsFunc(g, unicode.IsSpace) {
				groups = append(groups, g)
			}
		}
		claim := "[" + strings.Join(groups, " ") + "]"
		gs := apigw.ParseGroups(claim)
		if !slices.Equal(gs, groups) {
			t.Fatalf("ParseGroups(%q) = %q, want %q", claim, gs, groups)
		}
		if got, want := (apigw.Identity{UserID: "u", Groups: gs}).IsAdmin(), slices.Contains(groups, "admin"); got != want {
			t.Fatalf("groups %q: IsAdmin %v, want %v", groups, got, want)
		}
		// The raw input as a claim: a string claim is one group, a bracketed one never makes
		// up a group that is not a space-separated piece of it.
		raw := apigw.ParseGroups(in)
		switch {
		case in == "":
			if raw != nil {
				t.Fatalf("ParseGroups(\"\") = %q", raw)
			}
		case len(in) < 2 || in[0] != '[' || in[len(in)-1] != ']':
			if !slices.Equal(raw, []string{in}) {
				t.Fatalf("ParseGroups(%q) = %q, want the one group", in, raw)
			}
		default:
			pieces := strings.Split(in[1:len(in)-1], " ")
			for _, g := range raw {
				if g == "" || !slices.Contains(pieces, g) {
					t.Fatalf("ParseGroups(%q) made up group %q", in, g)
				}
			}
		}
	})
}

// TestParseGroupsExact: the cases, as API Gateway passes them.
func TestParseGroupsExact(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		claim string
		admin bool
	}{
		{"[admin]", true},
		{"[billing admin]", true},
		{"admin", true},
		{"[not admin]", true}, // two groups, "not" and "admin": Cognito names have no spaces
		{"not admin", false},  // a string claim: one group
		{"[billing,admin]", false},
		{"billing,admin", false},
		{`["admin"]`, false},
		{`[admin"]`, false},
		{"[administrators]", false},
		{"[Admin]", false},
		{"[ admin]", true},
		{"[]", false},
		{"", false},
	} {
		if got := (apigw.Identity{UserID: "u", Groups: apigw.ParseGroups(c.claim)}).IsAdmin(); got != c.admin {
			t.Errorf("claim %q: admin %v, want %v (groups %q)", c.claim, got, c.admin, apigw.ParseGroups(c.claim))
		}
	}
}

// FuzzMatchPath: any pattern and path match without panicking; a match binds every
// {param} to one non-empty segment, and putting the params back into the pattern gives the
// path again.
func FuzzMatchPath(f *testing.F) {
	for _, s := range []struct{ pattern, path string }{
		{"/products/{id}", "/products/p1"},
		{"/products/{id}", "/products/"},
		{"/products/{id}", "/products/p1/"},
		{"/products/{id}", "/products//p1"},
		{"/admin/products/{id}/restock", "/admin/products/p1/restock"},
		{"/admin/failed-jobs/{order_id}/retry", "/admin/failed-jobs/o_1/retry"},
		{"/reservations", "/reservations"},
		{"/{a}/{a}", "/x/y"},
		{"/{}", "/x"},
		{"/{", "/{"},
		{"}", "}"},
		{"", ""},
		{"/products/{id}", "/products/%2F"},
	} {
		f.Add(s.pattern, s.path)
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		params, ok := apigw.MatchPath(pattern, path)
		if !ok {
			if params != nil {
				t.Fatalf("no match but params %v", params)
			}
			return
		}
		ps := strings.Split(pattern, "/")
		names := map[string]int{}
		for _, p := range ps {
			if len(p) >= 2 && p[0] == '{' && p[len(p)-1] == '}' {
				names[p[1:len(p)-1]]++
			}
		}
		for name, v := range params {
			if names[name] == 0 {
				t.Fatalf("param %q is not in pattern %q", name, pattern)
			}
			if v == "" || strings.Contains(v, "/") {
				t.Fatalf("param %q = %q: not one non-empty segment", name, v)
			}
		}
		for name, n := range names {
			if _, ok := params[name]; !ok {
				t.Fatalf("pattern %q matched %q without binding %q", pattern, path, name)
			}
			if n > 1 {
				return // a repeated name keeps one value: the path cannot be rebuilt
			}
		}
		for i, p := range ps {
			if len(p) >= 2 && p[0] == '{' && p[len(p)-1] == '}' {
				ps[i] = params[p[1:len(p)-1]]
			}
		}
		if got := strings.Join(ps, "/"); got != path {
			t.Fatalf("pattern %q with %v gives %q, not the path %q", pattern, params, got, path)
		}
	})
}
