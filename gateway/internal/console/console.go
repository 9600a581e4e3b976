// Package console serves the web console at /console/: a page of plain
// JavaScript modules and CSS (static/, committed) that reads the REST API
// with a bearer token the user pastes, and uPlot for its charts (uplot/,
// fetched from npm at build time by generate.sh, not committed). Everything
// is embedded in the binary and loads from the gateway itself: the page
// needs no other host.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"segments/gateway/internal/httperr"
)

//go:embed static
var static embed.FS

//go:embed uplot
var uplot embed.FS

// Path is the console's folder; Path without its slash redirects to it.
const Path = "/console/"

// ContentSecurityPolicy lets the page load and call only its own origin.
// uPlot sets styles through the DOM (element.style), which style-src does
// not govern, so no inline styles are allowed.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

type file struct {
	body        []byte
	contentType string
	etag        string
}

// load reads the served files, by their path under Path: static/ at the
// top, uPlot's under uplot/.
func load() map[string]file {
	out := map[string]file{}
	add := func(fsys fs.FS, root, prefix string) {
		err := fs.WalkDir(fsys, root, func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			body, err := fs.ReadFile(fsys, name)
			if err != nil {
				return err
			}
			contentType, ok := contentTypes[path.Ext(name)]
			if !ok {
				return fmt.Errorf("console: no content type for %s", name)
			}
			sum := sha256.Sum256(body)
			out[prefix+strings.TrimPrefix(name, root+"/")] = file{
				body:        body,
				contentType: contentType,
				etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
			}
			return nil
		})
		if err != nil {
			panic(err) // the embeds above guarantee the folders; a test serves every file
		}
	}
	add(static, "static", "")
	add(uplot, "uplot", "uplot/")
	return out
}

// Handler serves the console to GET and HEAD: /console redirects to
// /console/, which is index.html; other files by name. Every answer forbids
// other origins (ContentSecurityPolicy) and is revalidated before reuse
// (the names carry no version, the ETag does). Other methods get 405 with
// Allow; unknown names 404, in the API's error envelope.
func Handler() http.Handler {
	files := load()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			httperr.Write(w, http.StatusMethodNotAllowed,
				httperr.One(httperr.TypeMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path))
			return
		}
		if r.URL.Path == strings.TrimSuffix(Path, "/") {
			http.Redirect(w, r, Path, http.StatusMovedPermanently)
			return
		}
		name, _ := strings.CutPrefix(r.URL.Path, Path)
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			httperr.Write(w, http.StatusNotFound, httperr.One(httperr.TypeNotFound, "no such path: "+r.URL.Path))
			return
		}
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}
