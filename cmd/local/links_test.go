package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/go-yaml"

	"lastunit/shared/testenv"
	"lastunit/web"
)

// The OpenAPI links of web/api/openapi.yaml: what a stateful API fuzzer follows to chain
// calls (reserve → checkout → the order → pay). The tests below check that every link names a
// real operation and its parameters, and then walk the sale on a real runner by following
// the links alone, each request built from the previous answer as a fuzzer would build it.

// linkDoc is openapi.yaml as plain values ($refs of links resolved by hand: libopenapi keeps a
// link's requestBody only as a string).
type linkDoc struct {
	raw map[string]any
	ops map[string]linkOp // by operationId
}

// linkOp is one operation: its method, path template and parameter names (path ones apart).
type linkOp struct {
	method, path string
	params       map[string]bool
	pathParams   []string
	responses    map[string]any
}

func loadLinkDoc(t *testing.T) linkDoc {
	t.Helper()
	b, err := fs.ReadFile(web.API, "api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d linkDoc
	if err := yaml.Unmarshal(b, &d.raw); err != nil {
		t.Fatal(err)
	}
	d.ops = map[string]linkOp{}
	for path, item := range d.raw["paths"].(map[string]any) {
		item := item.(map[string]any)
		for method, op := range item {
			op, ok := op.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			o := linkOp{method: strings.ToUpper(method), path: path, params: map[string]bool{}}
			for _, list := range []any{item["parameters"], op["parameters"]} {
				ps, _ := list.([]any)
				for _, p := range ps {
					p := d.resolve(p)
					name, _ := p["name"].(string)
					o.params[name] = true
					if p["in"] == "path" {
						o.pathParams = append(o.pathParams, name)
					}
				}
			}
			o.responses, _ = op["responses"].(map[string]any)
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Fatalf("%s %s has no operationId", o.method, path)
			}
			d.ops[id] = o
		}
	}
	return d
}

// resolve follows a local $ref ("#/components/links/X") and returns the object it names.
func (d linkDoc) resolve(v any) map[string]any {
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = d.raw
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cur = cur.(map[string]any)[part]
	}
	out, _ := cur.(map[string]any)
	return out
}

// link returns the link named name on operation op's answer status.
func (d linkDoc) link(t *testing.T, op, status, name string) map[string]any {
	t.Helper()
	resp := d.resolve(d.ops[op].responses[status])
	links, _ := resp["links"].(map[string]any)
	l := d.resolve(links[name])
	if l == nil {
		t.Fatalf("openapi.yaml: %s %s has no link %q", op, status, name)
	}
	return l
}

// evaluate replaces every "$response.body#/pointer" in v (a link's parameter or body, maybe
// nested) with what the pointer names in body.
func evaluate(t *testing.T, v any, body any) any {
	t.Helper()
	switch x := v.(type) {
	case string:
		ptr, ok := strings.CutPrefix(x, "$response.body#")
		if !ok {
			return x
		}
		cur := body
		for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			switch c := cur.(type) {
			case map[string]any:
				cur = c[tok]
			case []any:
				i, err := strconv.Atoi(tok)
				if err != nil || i >= len(c) {
					t.Fatalf("%s: no element %q in %v", x, tok, c)
				}
				cur = c[i]
			default:
				t.Fatalf("%s: %q is not in the answer", x, tok)
			}
		}
		if cur == nil {
			t.Fatalf("%s names nothing in the answer %v", x, body)
		}
		return cur
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = evaluate(t, e, body)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = evaluate(t, e, body)
		}
		return out
	}
	return v
}

// follow builds the request link l describes from the answer got (a JSON body) and sends it.
func (d linkDoc) follow(t *testing.T, send func(method, path, auth, body string) reply, l map[string]any, got []byte, auth string) reply {
	t.Helper()
	var body any
	if err := json.Unmarshal(got, &body); err != nil {
		t.Fatalf("the answer a link hangs on is not JSON: %s", got)
	}
	target := d.ops[l["operationId"].(string)]
	path := target.path
	params, _ := l["parameters"].(map[string]any)
	for name, expr := range params {
		v := fmt.Sprint(evaluate(t, expr, body))
		path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(v))
	}
	var reqBody string
	if rb, ok := l["requestBody"]; ok {
		b, err := json.Marshal(evaluate(t, rb, body))
		if err != nil {
			t.Fatal(err)
		}
		reqBody = string(b)
	}
	return send(target.method, path, auth, reqBody)
}

// TestLinksNameRealOperations: every link in openapi.yaml names an operation that exists,
// only parameters that operation has, and every one of its path parameters, each from the
// answer's body; and the sale is chained: a product leads to a hold, a hold to its checkout,
// a checkout to its order.
func TestLinksNameRealOperations(t *testing.T) {
	t.Parallel()
	d := loadLinkDoc(t)
	count := 0
	for id, op := range d.ops {
		for status, resp := range op.responses {
			links, _ := d.resolve(resp)["links"].(map[string]any)
			for name, l := range links {
				count++
				l := d.resolve(l)
				where := fmt.Sprintf("%s %s link %s", id, status, name)
				target, ok := d.ops[fmt.Sprint(l["operationId"])]
				if !ok {
					t.Errorf("%s: no operation %v", where, l["operationId"])
					continue
				}
				params, _ := l["parameters"].(map[string]any)
				for p, expr := range params {
					if !target.params[p] {
						t.Errorf("%s: %s has no parameter %q", where, l["operationId"], p)
					}
					if s, _ := expr.(string); !strings.HasPrefix(s, "$response.body#/") {
						t.Errorf("%s: parameter %s is %v, want a $response.body#/ pointer", where, p, expr)
					}
				}
				for _, p := range target.pathParams {
					if _, ok := params[p]; !ok {
						t.Errorf("%s: the path parameter %q of %s is not given", where, p, l["operationId"])
					}
				}
				if _, ok := l["description"].(string); !ok {
					t.Errorf("%s: no description", where)
				}
			}
		}
	}
	for _, c := range [][4]string{
		{"adminPutProduct", "200", "Reserve", "reserve"},
		{"getProduct", "200", "Reserve", "reserve"},
		{"reserve", "201", "Checkout", "checkout"},
		{"reserve", "201", "Release", "release"},
		{"checkout", "201", "GetOrder", "getOrder"},
		{"getOrder", "200", "Pay", "localPay"},
	} {
		if got := d.link(t, c[0], c[1], c[2])["operationId"]; got != c[3] {
			t.Errorf("%s %s link %s leads to %v, want %s", c[0], c[1], c[2], got, c[3])
		}
	}
	t.Logf("%d links", count)
}

// TestLinksWalkTheSale: a client that knows only the links creates a product, holds a unit,
// checks it out, reads the order, pays it, and sees the checked-out hold refuse a release,
// every request built from the answer before it; the contract check holds every exchange.
func TestLinksWalkTheSale(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Shop.Now = time.Now // the fulfillment poller runs in real time
	srv := startFullServer(t, env)
	d := loadLinkDoc(t)
	c := func(method, path, auth, body string) reply { return call(t, srv, method, path, auth, body) }
	admin, shopper := bearer(t, "links-admin", "admin"), bearer(t, "links-shopper")
	want := func(r reply, status int, what string) reply {
		t.Helper()
		if r.status != status {
			t.Fatalf("%s: %d, want %d: %s", what, r.status, status, r.body)
		}
		return r
	}

	product := want(call(t, srv, "PUT", "/admin/products/links-tee", admin,
		`{"name":"Linked tee","price_cents":1500,"currency":"usd","stock":5,"max_per_user":3}`), http.StatusOK, "create the product")
	want(d.follow(t, c, d.link(t, "adminPutProduct", "200", "GetProduct"), product.body, ""), http.StatusOK, "adminPutProduct → GetProduct")
	restocked := want(d.follow(t, c, d.link(t, "adminPutProduct", "200", "Restock"), product.body, admin), http.StatusOK, "adminPutProduct → Restock")
	viewed := want(d.follow(t, c, d.link(t, "adminRestock", "200", "GetProduct"), restocked.body, ""), http.StatusOK, "adminRestock → GetProduct")

	// A hold given back, then one checked out.
	first := want(d.follow(t, c, d.link(t, "getProduct", "200", "Reserve"), viewed.body, shopper), http.StatusCreated, "getProduct → Reserve")
	want(d.follow(t, c, d.link(t, "reserve", "201", "Release"), first.body, shopper), http.StatusNoContent, "reserve → Release")
	hold := want(d.follow(t, c, d.link(t, "adminPutProduct", "200", "Reserve"), product.body, shopper), http.StatusCreated, "adminPutProduct → Reserve")
	want(d.follow(t, c, d.link(t, "reserve", "201", "GetProduct"), hold.body, ""), http.StatusOK, "reserve → GetProduct")
	order := want(d.follow(t, c, d.link(t, "reserve", "201", "Checkout"), hold.body, shopper), http.StatusCreated, "reserve → Checkout")
	want(d.follow(t, c, d.link(t, "checkout", "201", "ReleaseCheckedOut"), order.body, shopper), http.StatusConflict, "checkout → ReleaseCheckedOut")
	read := want(d.follow(t, c, d.link(t, "checkout", "201", "GetOrder"), order.body, shopper), http.StatusOK, "checkout → GetOrder")
	want(d.follow(t, c, d.link(t, "getOrder", "200", "Pay"), read.body, shopper), http.StatusAccepted, "getOrder → Pay")

	var o struct {
		ID    string `json:"id"`
		Items []struct {
			ReservationID string `json:"reservation_id"`
		} `json:"items"`
	}
	var h struct {
		ID string `json:"id"`
	}
	json.Unmarshal(order.body, &o) //nolint:errcheck
	json.Unmarshal(hold.body, &h)  //nolint:errcheck
	if len(o.Items) != 1 || o.Items[0].ReservationID != h.ID {
		t.Fatalf("the order %s is not of the hold %s: %s", o.ID, h.ID, order.body)
	}
	// The payment's fulfillment runs on the queue: the books are read once it is done (at rest).
	deadline := time.Now().Add(20 * time.Second)
	for {
		var status string
		if err := env.Pool.QueryRow(context.Background(), `SELECT status FROM orders WHERE id = $1`, o.ID).Scan(&status); err != nil {
			t.Fatal(err)
		}
		if status == "fulfilled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s is still %s 20 s after its payment", o.ID, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	env.CheckLedger(t, "links-tee", 6)
}
