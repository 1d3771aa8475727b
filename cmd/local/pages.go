package main

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"

	"lastunit/shared/apigw"
	"lastunit/shared/shop"
	"lastunit/web"
)

// servePages serves the storefront at /, the admin dashboard at /dashboard, their files
// under /assets/, the pages' settings at /config.json, and the API reference (web/api) under
// /reference/ with its OpenAPI file also at /openapi.yaml.
func (s *server) servePages(cfg web.Config) {
	s.pages = cfg
	s.headers.Lock()
	s.headers.byHost = nil // the headers depend on cfg
	s.headers.Unlock()
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
	// The pages' files, and nothing else: an unknown name, a folder or the folder itself is a
	// 404 in the error shape (http.FileServer would answer plain text, or list the folder).
	assets, _ := fs.Sub(web.FS, "assets")
	assetFiles := http.StripPrefix("/assets/", http.FileServerFS(assets))
	s.mux.HandleFunc("/assets/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeMethodNotAllowed, "%s is not allowed on /assets/", r.Method)))
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/assets/")
		if st, err := fs.Stat(assets, name); name == "" || err != nil || st.IsDir() {
			apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeNotFound, "no such file in /assets/")))
			return
		}
		assetFiles.ServeHTTP(w, r)
	})
	ref, _ := fs.Sub(web.API, "api")
	files := http.StripPrefix("/reference/", http.FileServerFS(ref))
	s.handle("GET /reference/", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/reference/")
		if _, err := fs.Stat(ref, name); name != "" && err != nil {
			apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Errorf(shop.CodeNotFound, "no such file in the reference")))
			return
		}
		if strings.HasSuffix(r.URL.Path, ".yaml") { // not in Go's own table of types
			w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		}
		files.ServeHTTP(w, r)
	})
	s.handle("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		http.ServeFileFS(w, r, ref, "openapi.yaml")
	})
	body, _ := json.Marshal(cfg)
	s.handle("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body) //nolint:errcheck
	})
}
