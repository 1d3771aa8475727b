package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
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
