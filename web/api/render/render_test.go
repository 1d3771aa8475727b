package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pb33f/go-yaml"
)

// TestPageIsCurrent: web/api/index.html is what openapi.yaml and asyncapi.yaml render to, so
// the page a clone shows is the contract in the files. Run `make reference` after editing them.
func TestPageIsCurrent(t *testing.T) {
	oa, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	aa, err := os.ReadFile("../asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := render(oa, aa)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../index.html")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("web/api/index.html is stale: run `make reference` (go run ./web/api/render) and commit it")
	}
}

// TestPagesNeedNoOutsideFiles: the reference pages load no script at all, no inline style, and
// nothing from another origin, so they work under the pages' Content-Security-Policy.
func TestPagesNeedNoOutsideFiles(t *testing.T) {
	for _, name := range []string{"../index.html", "../design.html"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, bad := range []string{"<script", " style=", "<style", " on"} {
			if bad == " on" {
				if m := regexp.MustCompile(`\son[a-z]+=`).FindString(s); m != "" {
					t.Errorf("%s has an inline event handler %q", name, m)
				}
				continue
			}
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
		for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(s, -1) {
			if strings.Contains(m[1], "//") {
				t.Errorf("%s loads %q from elsewhere", name, m[1])
			}
		}
		if !strings.Contains(s, `href="../assets/reference.css"`) {
			t.Errorf("%s does not use ../assets/reference.css", name)
		}
	}
}

// keyName is what a mapping key in the contract files may be: a name, a path, a media type,
// a status code or a $ref, never prose.
var keyName = regexp.MustCompile(`^[A-Za-z0-9_./{}$:+*-]+$`)

// TestNoProseKeys: YAML cuts an unquoted flow value at a comma ({description: When set, checkout
// uses …} is a description "When set" and a key "checkout uses …"), so a description loses its
// end and the file says something else than its text. Every key of openapi.yaml and
// asyncapi.yaml must be a name; a key with a space is such a cut description.
func TestNoProseKeys(t *testing.T) {
	for _, name := range []string{"../openapi.yaml", "../asyncapi.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var root yaml.Node
		if err := yaml.Unmarshal(b, &root); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var walk func(n *yaml.Node)
		walk = func(n *yaml.Node) {
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if k := n.Content[i]; !keyName.MatchString(k.Value) {
						t.Errorf("%s:%d: the key %q is prose: a description cut at a comma? Quote it", name, k.Line, k.Value)
					}
				}
			}
			for _, c := range n.Content {
				walk(c)
			}
		}
		walk(&root)
	}
}

// TestPageShowsLinks: the page lists where each answer leads (the file's OpenAPI links), each
// to an operation on the page: a hold leads to its checkout, a checkout to its order.
func TestPageShowsLinks(t *testing.T) {
	oa, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	aa, err := os.ReadFile("../asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	page, err := render(oa, aa)
	if err != nil {
		t.Fatal(err)
	}
	articles := regexp.MustCompile(`(?s)<article class="op" id="([^"]+)">(.*?)</article>`).FindAllStringSubmatch(string(page), -1)
	ids := map[string]string{}
	for _, a := range articles {
		ids[a[1]] = a[2]
	}
	for _, c := range [][2]string{
		{"op-post-reservations", "op-post-checkout"},
		{"op-post-reservations", "op-delete-reservations-id"},
		{"op-post-checkout", "op-get-orders-id"},
		{"op-put-admin-products-id", "op-post-reservations"},
	} {
		body, ok := ids[c[0]]
		if !ok {
			t.Fatalf("no operation %s on the page", c[0])
		}
		next, _, _ := strings.Cut(body[strings.Index(body, "Next calls")+1:], "</table>")
		if !strings.Contains(body, "Next calls") || !strings.Contains(next, `href="#`+c[1]+`"`) {
			t.Errorf("%s does not lead to %s on the page", c[0], c[1])
		}
	}
	for _, m := range regexp.MustCompile(`<h4>Next calls</h4>(?s:.*?)</table>`).FindAllString(string(page), -1) {
		for _, h := range regexp.MustCompile(`href="#([^"]+)"`).FindAllStringSubmatch(m, -1) {
			if _, ok := ids[h[1]]; !ok {
				t.Errorf("a link leads to #%s, which is not on the page", h[1])
			}
		}
	}
}
