package main

import (
	"encoding/json"
	"io/fs"
	"net/http"

	"lastunit/web"
)

// servePages serves the storefront at /, the admin dashboard at /dashboard, their files
// under /assets/, and the pages' settings at /config.json.
func (s *server) servePages(cfg web.Config) {
	s.pages = cfg
	page := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, err := fs.ReadFile(web.FS, name)
			if err != nil {
				http.Error(w, "missing page", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			w.Write(b) //nolint:errcheck
		}
	}
	s.handle("GET /{$}", page("index.html"))
	s.handle("GET /dashboard", page("dashboard.html"))
	s.mux.Handle("GET /assets/", http.FileServerFS(web.FS))
	body, _ := json.Marshal(cfg)
	s.handle("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body) //nolint:errcheck
	})
}
