// Package swagger serves the OpenAPI document generated from the protos and
// Swagger UI (from the swagger-ui-dist npm package, fetched at build time by
// generate.sh; neither is committed).
package swagger

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	"segments/gateway/internal/httperr"
)

//go:embed doc.json
var doc []byte

//go:embed ui
var ui embed.FS

// initializer points Swagger UI at our document instead of the demo one.
const initializer = `window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/swagger/doc.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
};
`

// Handler serves /swagger/doc.json, /swagger/index.html and the UI's assets,
// to GET and HEAD (net/http drops the body of a HEAD answer); other methods
// get 405 with Allow.
func Handler() http.Handler {
	assets, err := fs.Sub(ui, "ui")
	if err != nil {
		panic(err) // the embed above guarantees the folder
	}
	files := http.StripPrefix("/swagger/", http.FileServer(http.FS(assets)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httperr.Write(w, http.StatusMethodNotAllowed,
				httperr.One(httperr.TypeMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path))
			return
		}
		switch r.URL.Path {
		case "/swagger/doc.json":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(doc)
		case "/swagger/swagger-initializer.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write([]byte(initializer))
		case "/swagger", "/swagger/":
			http.Redirect(w, r, "/swagger/index.html", http.StatusFound)
		case "/swagger/index.html":
			// net/http's file serving redirects */index.html to the folder.
			page, err := fs.ReadFile(assets, "index.html")
			if err != nil {
				http.Error(w, "index.html missing", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(page)
		default:
			name := strings.TrimPrefix(r.URL.Path, "/swagger/")
			if _, err := fs.Stat(assets, name); err != nil || name == "" {
				httperr.Write(w, http.StatusNotFound, httperr.One(httperr.TypeNotFound, "no such path: "+r.URL.Path))
				return
			}
			files.ServeHTTP(w, r)
		}
	})
}
