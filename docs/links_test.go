package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// The files checked: the README, the repository's other top-level Markdown files and docs/.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"../README.md", "../CONTRIBUTING.md", "../SECURITY.md", "../CHANGELOG.md"}
	more, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(more) == 0 {
		t.Fatal("no Markdown files in docs/")
	}
	return append(files, more...)
}

var (
	// [text](target) and ![alt](target), not inside code spans.
	linkRE = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)\)`)
	// `code` spans.
	codeRE = regexp.MustCompile("`([^`\n]+)`")
	// A path in the repository: top-level names that exist, then segments.
	pathRE = regexp.MustCompile(`^[A-Za-z0-9_.{}-]+(/[A-Za-z0-9_.{},-]*)+$`)
	// Generated or git-ignored places a doc may name without their existing in a clone.
	generated = []string{"bin/", "build/", ".tools/", ".run/", "infra/cdk.out"}
)

// slug is GitHub's anchor for a heading: lower case, letters, digits, spaces as '-', '-' and '_' kept.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// anchors lists the anchors of a Markdown file's headings (outside fenced code).
func anchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimLeft(line, "#")
		if !strings.HasPrefix(h, " ") {
			continue
		}
		s := slug(h)
		if n := seen[s]; n > 0 {
			out[s+"-"+itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

// expand turns functions/{a,b}/main.go into functions/a/main.go and functions/b/main.go.
func expand(p string) []string {
	i := strings.Index(p, "{")
	j := strings.Index(p, "}")
	if i < 0 || j < i {
		return []string{p}
	}
	var out []string
	for _, alt := range strings.Split(p[i+1:j], ",") {
		out = append(out, expand(p[:i]+alt+p[j+1:])...)
	}
	return out
}

// TestLinksAndPathsExist: every relative link of the docs leads to a file (and, with #anchor, to
// a heading of it), and every repository path they name in a code span exists.
func TestLinksAndPathsExist(t *testing.T) {
	top, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	topNames := map[string]bool{}
	for _, e := range top {
		topNames[e.Name()] = true
	}
	anchorCache := map[string]map[string]bool{}
	for _, file := range markdownFiles(t) {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		dir := filepath.Dir(file)
		fenced := false
		for n, line := range strings.Split(string(raw), "\n") {
			where := file + ":" + itoa(n+1)
			if strings.HasPrefix(line, "```") {
				fenced = !fenced
				continue
			}
			if fenced {
				continue
			}
			prose := codeRE.ReplaceAllString(line, "")
			for _, m := range linkRE.FindAllStringSubmatch(prose, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				path, frag, _ := strings.Cut(target, "#")
				resolved := file
				if path != "" {
					resolved = filepath.Join(dir, path)
					if _, err := os.Stat(resolved); err != nil {
						t.Errorf("%s: link to %s: no such file", where, target)
						continue
					}
				}
				if frag == "" || !strings.HasSuffix(resolved, ".md") {
					continue
				}
				if anchorCache[resolved] == nil {
					anchorCache[resolved] = anchors(t, resolved)
				}
				if !anchorCache[resolved][frag] {
					t.Errorf("%s: link to %s: no heading with that anchor in %s", where, target, resolved)
				}
			}
			for _, m := range codeRE.FindAllStringSubmatch(line, -1) {
				p := m[1]
				if !pathRE.MatchString(p) || !topNames[strings.SplitN(p, "/", 2)[0]] {
					continue
				}
				skip := false
				for _, g := range generated {
					skip = skip || strings.HasPrefix(p, g)
				}
				if skip {
					continue
				}
				for _, q := range expand(p) {
					if _, err := os.Stat(filepath.Join("..", q)); err != nil {
						t.Errorf("%s: names %s, which does not exist", where, q)
					}
				}
			}
		}
	}
}

// TestSlug pins the anchors GitHub gives headings, which the links above rely on.
func TestSlug(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"Try it with curl", "try-it-with-curl"},
		{"The drop moment (`make bench-drop`)", "the-drop-moment-make-bench-drop"},
		{"Fulfillment, dead letters and the admin's tools", "fulfillment-dead-letters-and-the-admins-tools"},
		{"Signing in: the same flow here and in AWS", "signing-in-the-same-flow-here-and-in-aws"},
	} {
		if got := slug(c.in); got != c.want {
			t.Errorf("slug(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestEachDocSaysWhoItIsFor: every page of docs/ opens, under its title, with the reader it
// is for ("For ..."), so a reader knows at once whether to read on.
func TestEachDocSaysWhoItIsFor(t *testing.T) {
	t.Parallel()
	pages, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(raw), "\n")
		if len(lines) < 3 || !strings.HasPrefix(lines[0], "# ") || lines[1] != "" || !strings.HasPrefix(lines[2], "For ") {
			t.Errorf("%s: should start with a title, a blank line and a line beginning with \"For \"", p)
		}
	}
}
