// Command render writes web/api/index.html, the API reference page, from web/api/openapi.yaml
// and web/api/asyncapi.yaml: `go run ./web/api/render` (or `make reference`) from the
// repository root. The page is static HTML with one style sheet (web/assets/reference.css) and
// no script, so it works from a clone, under the runner at /reference/, and on a static host.
// TestPageIsCurrent fails when the committed page is not what the files render to.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pb33f/go-yaml"
	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

func main() {
	dir := flag.String("dir", "web/api", "the folder holding openapi.yaml and asyncapi.yaml; index.html is written there")
	flag.Parse()
	oa, err := os.ReadFile(filepath.Join(*dir, "openapi.yaml"))
	check(err)
	aa, err := os.ReadFile(filepath.Join(*dir, "asyncapi.yaml"))
	check(err)
	page, err := render(oa, aa)
	check(err)
	check(os.WriteFile(filepath.Join(*dir, "index.html"), page, 0o644))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

// page accumulates HTML.
type page struct {
	bytes.Buffer
	byID map[string]opInfo // the operations by operationId (links name their target so)
}

func (p *page) f(format string, args ...any) { fmt.Fprintf(&p.Buffer, format, args...) }

// esc escapes text for HTML.
func esc(s string) string { return html.EscapeString(s) }

var (
	codeSpan = regexp.MustCompile("`([^`]+)`")
	strong   = regexp.MustCompile(`\*\*([^*]+)\*\*`)
)

// inline renders one line of the files' descriptions: `code` and **strong**, the rest escaped.
func inline(s string) string {
	s = esc(s)
	s = codeSpan.ReplaceAllString(s, "<code>$1</code>")
	return strong.ReplaceAllString(s, "<strong>$1</strong>")
}

// prose renders a description: paragraphs split by blank lines, "- " lines as list items
// (an indented line continues the item above it).
func prose(s string) string {
	var out strings.Builder
	for _, block := range strings.Split(strings.TrimSpace(s), "\n\n") {
		var para, items []string
		for _, l := range strings.Split(block, "\n") {
			l = strings.TrimSpace(l)
			switch {
			case strings.HasPrefix(l, "- "):
				items = append(items, strings.TrimPrefix(l, "- "))
			case len(items) > 0:
				items[len(items)-1] += " " + l
			case l != "":
				para = append(para, l)
			}
		}
		if len(para) > 0 {
			out.WriteString("<p>" + inline(strings.Join(para, " ")) + "</p>\n")
		}
		if len(items) > 0 {
			out.WriteString("<ul>")
			for _, it := range items {
				out.WriteString("<li>" + inline(it) + "</li>")
			}
			out.WriteString("</ul>\n")
		}
	}
	return out.String()
}

// refName is the last part of a $ref ("#/components/schemas/Product" -> "Product").
func refName(ref string) string { return ref[strings.LastIndex(ref, "/")+1:] }

// schemaSummary is a short, linked description of a schema's type and limits.
func schemaSummary(sp *base.SchemaProxy) string {
	if sp == nil {
		return ""
	}
	if sp.IsReference() {
		n := refName(sp.GetReference())
		return fmt.Sprintf(`<a href="#schema-%s">%s</a>`, esc(n), esc(n))
	}
	s := sp.Schema()
	if s == nil {
		return ""
	}
	var parts []string
	switch {
	case s.Const != nil:
		parts = append(parts, "<code>"+esc(strconv.Quote(s.Const.Value))+"</code>")
	case len(s.Enum) > 0:
		var vs []string
		for _, e := range s.Enum {
			vs = append(vs, "<code>"+esc(e.Value)+"</code>")
		}
		parts = append(parts, "one of "+strings.Join(vs, ", "))
	case len(s.AllOf) > 0:
		var vs []string
		for _, a := range s.AllOf {
			if x := schemaSummary(a); x != "" {
				vs = append(vs, x)
			}
		}
		parts = append(parts, strings.Join(vs, " and "))
	case len(s.OneOf) > 0:
		var vs []string
		for _, a := range s.OneOf {
			vs = append(vs, schemaSummary(a))
		}
		parts = append(parts, "one of "+strings.Join(vs, ", "))
	case slices.Contains(s.Type, "array") && s.Items != nil && s.Items.IsA():
		parts = append(parts, "array of "+schemaSummary(s.Items.A))
	case len(s.Type) > 0:
		parts = append(parts, esc(strings.Join(s.Type, " or ")))
	}
	if s.Format != "" {
		parts = append(parts, esc(s.Format))
	}
	if s.Pattern != "" {
		parts = append(parts, "<code>"+esc(s.Pattern)+"</code>")
	}
	if r := span(s.Minimum, s.Maximum); r != "" {
		parts = append(parts, r)
	}
	if s.MinLength != nil || s.MaxLength != nil {
		parts = append(parts, "length "+span(f64(s.MinLength), f64(s.MaxLength)))
	}
	if s.MaxItems != nil {
		parts = append(parts, fmt.Sprintf("at most %d items", *s.MaxItems))
	}
	if s.Default != nil {
		parts = append(parts, "default <code>"+esc(s.Default.Value)+"</code>")
	}
	if s.Not != nil && s.Not.Schema() != nil && len(s.Not.Schema().Required) > 0 {
		parts = append(parts, "never with <code>"+esc(strings.Join(s.Not.Schema().Required, ", "))+"</code>")
	}
	return strings.Join(parts, ", ")
}

func f64(i *int64) *float64 {
	if i == nil {
		return nil
	}
	f := float64(*i)
	return &f
}

func span(lo, hi *float64) string {
	num := func(f *float64) string { return strconv.FormatFloat(*f, 'f', -1, 64) }
	switch {
	case lo != nil && hi != nil:
		return num(lo) + ".." + num(hi)
	case lo != nil:
		return "≥ " + num(lo)
	case hi != nil:
		return "≤ " + num(hi)
	}
	return ""
}

// properties renders an object schema's fields as a table.
func properties(p *page, s *base.Schema) {
	if s == nil || s.Properties == nil || s.Properties.Len() == 0 {
		return
	}
	p.f("<table><thead><tr><th>field</th><th>type</th><th>required</th><th>meaning</th></tr></thead><tbody>\n")
	for name, prop := range s.Properties.FromOldest() {
		desc := ""
		if ps := prop.Schema(); ps != nil {
			desc = ps.Description
		}
		req := ""
		if slices.Contains(s.Required, name) {
			req = "yes"
		}
		p.f("<tr><td><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td></tr>\n", esc(name), schemaSummary(prop), req, inline(desc))
	}
	p.f("</tbody></table>\n")
	if s.AdditionalProperties != nil && s.AdditionalProperties.IsB() && !s.AdditionalProperties.B {
		p.f("<p class=\"note\">No other fields: an unknown field is refused (request) or a contract break (answer).</p>\n")
	}
}

func slug(s string) string {
	return strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// opInfo is one operation and where it sits.
type opInfo struct {
	method, path string
	op           *v3.Operation
	item         *v3.PathItem
}

func (o opInfo) anchor() string { return "op-" + slug(o.method+" "+o.path) }

func (o opInfo) localOnly() bool {
	_, ok := o.op.Extensions.Get("x-lastunit-local-only")
	return ok
}

func (o opInfo) notServed() bool {
	_, ok := o.item.Extensions.Get("x-lastunit-served")
	return ok
}

// access says who may call the operation.
func (o opInfo) access() string {
	if o.op.Security != nil && len(o.op.Security) == 0 {
		return "public"
	}
	for _, r := range o.op.Security {
		if r.ContainsEmptyRequirement || r.Requirements == nil || r.Requirements.Len() == 0 {
			return "token optional"
		}
	}
	if strings.HasPrefix(o.path, "/admin/") {
		return "admin token"
	}
	return "bearer token"
}

func render(openapiYAML, asyncapiYAML []byte) ([]byte, error) {
	doc, err := libopenapi.NewDocument(openapiYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	built, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	m := built.Model
	var ops []opInfo
	p := &page{byID: map[string]opInfo{}}
	for path, item := range m.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			o := opInfo{strings.ToUpper(method), path, op, item}
			ops = append(ops, o)
			p.byID[op.OperationId] = o
		}
	}

	p.f(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s</title>
<link rel="stylesheet" href="../assets/reference.css">
</head>
<body>
<!-- Generated by web/api/render from openapi.yaml and asyncapi.yaml: edit those, then run make reference. -->
<header>
<h1>%s <span class="version">v%s</span></h1>
<p>%s</p>
<nav><a href="openapi.yaml">openapi.yaml</a> · <a href="asyncapi.yaml">asyncapi.yaml</a> · <a href="design.html">Design</a></nav>
</header>
<main>
`, esc(m.Info.Title), esc(m.Info.Title), esc(m.Info.Version), inline(m.Info.Summary))
	p.f("<section id=\"overview\">\n%s</section>\n", prose(m.Info.Description))

	// Contents, by tag.
	p.f("<nav class=\"toc\" id=\"contents\"><h2>Routes</h2>\n")
	for _, tag := range m.Tags {
		p.f("<h3><a href=\"#tag-%s\">%s</a></h3><ul>\n", slug(tag.Name), esc(tag.Name))
		for _, o := range ops {
			if len(o.op.Tags) > 0 && o.op.Tags[0] == tag.Name {
				p.f("<li><a href=\"#%s\"><span class=\"method %s\">%s</span> <code>%s</code></a> %s</li>\n", o.anchor(), strings.ToLower(o.method), o.method, esc(o.path), inline(o.op.Summary))
			}
		}
		p.f("</ul>\n")
	}
	p.f("<h3><a href=\"#errors\">errors</a> · <a href=\"#schemas\">schemas</a> · <a href=\"#websocket\">WebSocket</a></h3>\n</nav>\n")

	for _, tag := range m.Tags {
		p.f("<section id=\"tag-%s\">\n<h2>%s</h2>\n%s", slug(tag.Name), esc(tag.Name), prose(tag.Description))
		for _, o := range ops {
			if len(o.op.Tags) == 0 || o.op.Tags[0] != tag.Name {
				continue
			}
			renderOp(p, o)
		}
		p.f("</section>\n")
	}

	renderErrors(p, m)
	renderSchemas(p, m)
	if err := renderWebSocket(p, asyncapiYAML); err != nil {
		return nil, err
	}
	p.f("</main>\n</body>\n</html>\n")
	return p.Bytes(), nil
}

func renderOp(p *page, o opInfo) {
	var badges []string
	badges = append(badges, `<span class="badge">`+o.access()+`</span>`)
	if o.localOnly() {
		badges = append(badges, `<span class="badge local">runner only</span>`)
	}
	if o.notServed() {
		badges = append(badges, `<span class="badge later">contract, not yet served</span>`)
	}
	p.f("<article class=\"op\" id=\"%s\">\n<h3><span class=\"method %s\">%s</span> <code>%s</code> %s</h3>\n<p class=\"summary\">%s</p>\n",
		o.anchor(), strings.ToLower(o.method), o.method, esc(o.path), strings.Join(badges, " "), inline(o.op.Summary))
	if o.op.Description != "" {
		p.f("%s", prose(o.op.Description))
	}
	params := append(append([]*v3.Parameter{}, o.item.Parameters...), o.op.Parameters...)
	if len(params) > 0 {
		p.f("<h4>Parameters</h4>\n<table><thead><tr><th>name</th><th>in</th><th>type</th><th>required</th><th>meaning</th></tr></thead><tbody>\n")
		for _, par := range params {
			req := ""
			if par.Required != nil && *par.Required {
				req = "yes"
			}
			p.f("<tr><td><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", esc(par.Name), esc(par.In), schemaSummary(par.Schema), req, prose(par.Description))
		}
		p.f("</tbody></table>\n")
	}
	if rb := o.op.RequestBody; rb != nil && rb.Content != nil {
		opt := " (optional)"
		if rb.Required != nil && *rb.Required {
			opt = ""
		}
		for mt, media := range rb.Content.FromOldest() {
			p.f("<h4>Body%s</h4>\n<p><code>%s</code>: %s</p>\n", opt, esc(mt), schemaSummary(media.Schema))
			if media.Schema != nil && !media.Schema.IsReference() {
				s := media.Schema.Schema()
				if s.Description != "" {
					p.f("%s", prose(s.Description))
				}
				properties(p, s)
			}
		}
	}
	if o.op.Responses != nil && o.op.Responses.Codes != nil {
		p.f("<h4>Answers</h4>\n<table><thead><tr><th>status</th><th>body</th><th>when</th></tr></thead><tbody>\n")
		for code, resp := range o.op.Responses.Codes.FromOldest() {
			body := ""
			if resp.Content != nil {
				for mt, media := range resp.Content.FromOldest() {
					if body != "" {
						body += "<br>"
					}
					if strings.Contains(mt, "json") {
						body += schemaSummary(media.Schema)
					} else {
						body += "<code>" + esc(mt) + "</code>"
					}
				}
			}
			if resp.Headers != nil {
				for name := range resp.Headers.KeysFromOldest() {
					body += "<br>header <code>" + esc(name) + "</code>"
				}
			}
			p.f("<tr><td>%s</td><td>%s</td><td>%s</td></tr>\n", esc(code), body, prose(resp.Description))
		}
		p.f("</tbody></table>\n")
		for code, resp := range o.op.Responses.Codes.FromOldest() {
			if resp.Content == nil || !strings.HasPrefix(code, "2") {
				continue
			}
			for _, media := range resp.Content.FromOldest() {
				if media.Schema != nil && !media.Schema.IsReference() && media.Schema.Schema() != nil && media.Schema.Schema().Properties != nil {
					p.f("<p>%s body:</p>\n", esc(code))
					properties(p, media.Schema.Schema())
				}
			}
		}
		renderLinks(p, o)
	}
	p.f("</article>\n")
}

// renderLinks lists where the operation's answers lead (its OpenAPI links): the next calls a
// client, or a stateful API fuzzer, makes with values taken from the answer.
func renderLinks(p *page, o opInfo) {
	var rows []string
	for code, resp := range o.op.Responses.Codes.FromOldest() {
		if resp.Links == nil {
			continue
		}
		for _, l := range resp.Links.FromOldest() {
			target := "<code>" + esc(l.OperationId) + "</code>"
			if t, ok := p.byID[l.OperationId]; ok {
				target = fmt.Sprintf(`<a href="#%s"><span class="method %s">%s</span> <code>%s</code></a>`, t.anchor(), strings.ToLower(t.method), t.method, esc(t.path))
			}
			var from []string
			if l.Parameters != nil {
				for k, v := range l.Parameters.FromOldest() {
					from = append(from, "<code>"+esc(k)+"</code> = <code>"+esc(v)+"</code>")
				}
			}
			if n := l.GoLow().RequestBody.ValueNode; n != nil {
				from = append(from, "body <code>"+esc(flowJSON(n))+"</code>")
			}
			rows = append(rows, fmt.Sprintf("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", esc(code), target, strings.Join(from, "<br>"), inline(l.Description)))
		}
	}
	if len(rows) == 0 {
		return
	}
	p.f("<h4>Next calls</h4>\n<table><thead><tr><th>after</th><th>call</th><th>with</th><th>what</th></tr></thead><tbody>\n")
	for _, r := range rows {
		p.f("%s", r)
	}
	p.f("</tbody></table>\n")
}

func renderErrors(p *page, m v3.Document) {
	p.f("<section id=\"errors\">\n<h2>Errors</h2>\n")
	p.f("<p>Every failure has one shape, <a href=\"#schema-Error\">Error</a>: <code>{\"error\": {\"code\": \"out_of_stock\", \"message\": \"only 2 left\", \"details\": {\"available\": 2}}}</code>. Read <code>code</code>; <code>message</code> is for people.</p>\n")
	codes, ok := m.Components.Schemas.Get("ErrorCode")
	if ok && codes.Schema() != nil {
		p.f("<table><thead><tr><th>code</th><th>status and meaning</th></tr></thead><tbody>\n")
		for _, c := range codes.Schema().OneOf {
			s := c.Schema()
			p.f("<tr><td><code>%s</code></td><td>%s</td></tr>\n", esc(s.Const.Value), inline(s.Description))
		}
		p.f("</tbody></table>\n")
	}
	if m.Components.Responses != nil {
		p.f("<h3>The error answers</h3>\n<dl>\n")
		for name, r := range m.Components.Responses.FromOldest() {
			if name == "Page" {
				continue
			}
			p.f("<dt id=\"response-%s\">%s</dt><dd>%s</dd>\n", esc(name), esc(name), prose(r.Description))
		}
		p.f("</dl>\n")
	}
	p.f("</section>\n")
}

func renderSchemas(p *page, m v3.Document) {
	p.f("<section id=\"schemas\">\n<h2>Schemas</h2>\n")
	if m.Components.SecuritySchemes != nil {
		for name, s := range m.Components.SecuritySchemes.FromOldest() {
			p.f("<article class=\"schema\" id=\"security-%s\"><h3>%s <span class=\"badge\">%s %s</span></h3>\n%s</article>\n", esc(name), esc(name), esc(s.Type), esc(s.Scheme), prose(s.Description))
		}
	}
	for name, sp := range m.Components.Schemas.FromOldest() {
		s := sp.Schema()
		p.f("<article class=\"schema\" id=\"schema-%s\"><h3>%s</h3>\n", esc(name), esc(name))
		if s.Description != "" {
			p.f("%s", prose(s.Description))
		}
		if s.Properties == nil || s.Properties.Len() == 0 {
			p.f("<p>%s</p>\n", schemaSummary(sp))
		}
		properties(p, s)
		if name == "Error" {
			if e, ok := s.Properties.Get("error"); ok {
				p.f("<p>Inside <code>error</code>:</p>\n")
				properties(p, e.Schema())
				if d, ok := e.Schema().Properties.Get("details"); ok {
					p.f("<p>Inside <code>details</code> (by code):</p>\n")
					properties(p, d.Schema())
				}
			}
		}
		p.f("</article>\n")
	}
	p.f("</section>\n")
}

// asyncMessage is the part of an AsyncAPI message the page shows.
type asyncMessage struct {
	Title       string `yaml:"title"`
	Summary     string `yaml:"summary"`
	Description string `yaml:"description"`
	Payload     struct {
		Required   []string  `yaml:"required"`
		Properties yaml.Node `yaml:"properties"`
	} `yaml:"payload"`
	Examples []struct {
		Payload yaml.Node `yaml:"payload"`
	} `yaml:"examples"`
}

func renderWebSocket(p *page, src []byte) error {
	var doc struct {
		Info struct {
			Title       string `yaml:"title"`
			Description string `yaml:"description"`
		} `yaml:"info"`
		Components struct {
			Messages yaml.Node `yaml:"messages"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return fmt.Errorf("asyncapi.yaml: %w", err)
	}
	p.f("<section id=\"websocket\">\n<h2>WebSocket: %s</h2>\n<p>The local runner serves it at <code>ws://HOST:PORT/ws</code>; in AWS it is the WebSocket API's own URL. Machine-readable: <a href=\"asyncapi.yaml\">asyncapi.yaml</a> (AsyncAPI 3).</p>\n%s", esc(doc.Info.Title), prose(doc.Info.Description))
	msgs := doc.Components.Messages.Content
	for i := 0; i+1 < len(msgs); i += 2 {
		name := msgs[i].Value
		var msg asyncMessage
		if err := msgs[i+1].Decode(&msg); err != nil {
			return fmt.Errorf("asyncapi.yaml message %s: %w", name, err)
		}
		p.f("<article class=\"schema\" id=\"ws-%s\"><h3>%s</h3>\n<p class=\"summary\">%s</p>\n", esc(name), esc(msg.Title), inline(msg.Summary))
		if msg.Description != "" {
			p.f("%s", prose(msg.Description))
		}
		for _, ex := range msg.Examples {
			p.f("<pre><code>%s</code></pre>\n", esc(flowJSON(&ex.Payload)))
		}
		props := msg.Payload.Properties.Content
		p.f("<table><thead><tr><th>field</th><th>type</th><th>required</th><th>meaning</th></tr></thead><tbody>\n")
		for j := 0; j+1 < len(props); j += 2 {
			var f struct {
				Type        string   `yaml:"type"`
				Const       string   `yaml:"const"`
				Enum        []string `yaml:"enum"`
				Pattern     string   `yaml:"pattern"`
				Description string   `yaml:"description"`
			}
			if err := props[j+1].Decode(&f); err != nil {
				return fmt.Errorf("asyncapi.yaml message %s: %w", name, err)
			}
			typ := esc(f.Type)
			switch {
			case f.Const != "":
				typ = "<code>" + esc(strconv.Quote(f.Const)) + "</code>"
			case len(f.Enum) > 0:
				typ = "one of <code>" + esc(strings.Join(f.Enum, "</code>, <code>")) + "</code>"
			}
			if f.Pattern != "" {
				typ += ", <code>" + esc(f.Pattern) + "</code>"
			}
			req := ""
			if slices.Contains(msg.Payload.Required, props[j].Value) {
				req = "yes"
			}
			p.f("<tr><td><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td></tr>\n", esc(props[j].Value), typ, req, inline(f.Description))
		}
		p.f("</tbody></table>\n</article>\n")
	}
	p.f("</section>\n")
	return nil
}

// flowJSON writes a YAML mapping of scalars as one line of JSON, keeping the file's key order.
func flowJSON(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		var parts []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			parts = append(parts, strconv.Quote(n.Content[i].Value)+": "+flowJSON(n.Content[i+1]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case yaml.SequenceNode:
		var parts []string
		for _, c := range n.Content {
			parts = append(parts, flowJSON(c))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "null"
}
