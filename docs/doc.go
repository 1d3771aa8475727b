// Package docs holds lastunit's documentation (the Markdown files beside this one) and the
// test that keeps it honest: every relative link and every repository path named in README.md
// and docs/*.md must exist, and every link to a heading must find that heading.
package docs
