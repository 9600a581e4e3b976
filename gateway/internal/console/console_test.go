package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, method, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	return w
}

func TestRedirectsToTheFolder(t *testing.T) {
	w := serve(t, http.MethodGet, "/console")
	if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/console/" {
		t.Fatalf("GET /console: %d, Location %q; want 301 to /console/", w.Code, w.Header().Get("Location"))
	}
}

func TestServesThePage(t *testing.T) {
	for _, p := range []string{"/console/", "/console/index.html"} {
		w := serve(t, http.MethodGet, p)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("GET %s: %d %q", p, w.Code, w.Header().Get("Content-Type"))
		}
		if !strings.Contains(w.Body.String(), `<script type="module" src="app.js">`) {
			t.Errorf("GET %s: the page does not load app.js:\n%s", p, w.Body)
		}
		h := w.Header()
		if h.Get("Content-Security-Policy") != ContentSecurityPolicy || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Cache-Control") != "no-cache" || h.Get("ETag") == "" {
			t.Errorf("GET %s: headers %v", p, h)
		}
	}
}

// The policy keeps the page to its own origin.
func TestContentSecurityPolicy(t *testing.T) {
	directives := map[string]string{}
	for _, d := range strings.Split(ContentSecurityPolicy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{
		"default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "connect-src": "'self'",
		"img-src": "'self' data:", "object-src": "'none'", "frame-ancestors": "'none'",
	} {
		if directives[name] != want {
			t.Errorf("%s: %q, want %q", name, directives[name], want)
		}
	}
}

var (
	pageRefs   = regexp.MustCompile(`(?:src|href)="([^"#:]+)"`)
	moduleRefs = regexp.MustCompile(`(?m)^(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'`)
)

// Every file the page loads, and every module those import, is served with
// its content type.
func TestServesEveryFileThePageLoads(t *testing.T) {
	want := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	seen := map[string]bool{}
	queue := []string{}
	for _, m := range pageRefs.FindAllStringSubmatch(serve(t, http.MethodGet, "/console/").Body.String(), -1) {
		queue = append(queue, m[1])
	}
	for len(queue) > 0 {
		name := path.Clean(queue[0])
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		w := serve(t, http.MethodGet, Path+name)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != want[path.Ext(name)] {
			t.Errorf("GET %s%s: %d %q", Path, name, w.Code, w.Header().Get("Content-Type"))
			continue
		}
		if w.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s%s: no Content-Security-Policy", Path, name)
		}
		if path.Ext(name) == ".js" {
			for _, m := range moduleRefs.FindAllStringSubmatch(w.Body.String(), -1) {
				queue = append(queue, path.Join(path.Dir(name), m[1]))
			}
		}
	}
	for _, name := range []string{"app.js", "api.js", "ui.js", "segments.js", "user.js", "style.css",
		"uplot/uPlot.esm.js", "uplot/uPlot.min.css"} {
		if !seen[name] {
			t.Errorf("%s is not loaded by the page (loaded: %v)", name, seen)
		}
	}
}

func TestHeadAndRevalidation(t *testing.T) {
	get := serve(t, http.MethodGet, "/console/app.js")
	head := serve(t, http.MethodHead, "/console/app.js")
	if head.Code != http.StatusOK || head.Body.Len() != 0 ||
		head.Header().Get("Content-Length") != get.Header().Get("Content-Length") {
		t.Errorf("HEAD: %d, %d bytes of body, Content-Length %q (GET: %q)", head.Code, head.Body.Len(),
			head.Header().Get("Content-Length"), get.Header().Get("Content-Length"))
	}
	again := serve(t, http.MethodGet, "/console/app.js", "If-None-Match", get.Header().Get("ETag"))
	if again.Code != http.StatusNotModified {
		t.Errorf("GET with the ETag: %d, want 304", again.Code)
	}
}

func TestErrorsAreTheEnvelope(t *testing.T) {
	for _, c := range []struct {
		method, target string
		code           int
		typ            string
	}{
		{http.MethodPost, "/console/", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodDelete, "/console/app.js", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodGet, "/console/no-such-file.js", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/console/uplot/", http.StatusNotFound, "not_found"},
	} {
		w := serve(t, c.method, c.target)
		var body struct {
			Errors []struct{ Type, Info string }
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != c.code ||
			len(body.Errors) != 1 || body.Errors[0].Type != c.typ {
			t.Errorf("%s %s: %d %s", c.method, c.target, w.Code, w.Body)
		}
		if c.code == http.StatusMethodNotAllowed && w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", c.method, c.target, w.Header().Get("Allow"))
		}
	}
}

// Nothing served names another host outside a comment: the console works
// without a network beyond the gateway (no CDN, no fonts, no analytics).
var remote = regexp.MustCompile(`(?i)(https?:)?//[a-z0-9-]+(\.[a-z0-9-]+)+`)

func TestNoOtherHost(t *testing.T) {
	files := load()
	if len(files) < 8 {
		t.Fatalf("only %d files", len(files))
	}
	for name, f := range files {
		if url := remote.FindString(withoutComments(name, string(f.body))); url != "" {
			t.Errorf("%s names %s outside a comment", name, url)
		}
	}
}

func TestWithoutComments(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"a.js", "a // https://x.org\nb", "a \nb"},
		{"a.js", "a /* http://x.org */ b", "a  b"},
		{"a.js", `s = "http://x.org"; // c`, `s = "http://x.org"; `},
		{"a.js", "s = '//'; t = `//x.org` /* c */", "s = '//'; t = `//x.org` "},
		{"a.js", "r = /\\/\\/\"/g; u = 'https://x.org'", "r = /\\/\\/\"/g; u = 'https://x.org'"},
		{"a.js", "x = a / b; // c", "x = a / b; "},
		{"a.css", "a{b:url(https://x.org/f)} /* https://y.org */", "a{b:url(https://x.org/f)} "},
		{"a.html", "<a href=\"https://x.org\"><!-- https://y.org -->", "<a href=\"https://x.org\">"},
	} {
		if got := withoutComments(c.name, c.in); got != c.want {
			t.Errorf("withoutComments(%q, %q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

// withoutComments drops the comments of a JavaScript, CSS or HTML file,
// keeping strings, template literals and regular expression literals whole.
func withoutComments(name, src string) string {
	if path.Ext(name) == ".html" {
		return regexp.MustCompile(`(?s)<!--.*?-->`).ReplaceAllString(src, "")
	}
	js := path.Ext(name) == ".js"
	var out strings.Builder
	last := byte(0) // the last character of code, outside spaces: decides whether / starts a regex
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return out.String()
			}
			i += end + 3
		case js && c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i+1 < len(src) && src[i+1] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || (js && c == '`') || (js && c == '/' && strings.IndexByte("(,=:[!&|?{};+-*%<>~^\x00", last) >= 0):
			start, inClass := i, false
			for i++; i < len(src); i++ {
				if src[i] == '\\' {
					i++
				} else if c == '/' && src[i] == '[' {
					inClass = true
				} else if c == '/' && src[i] == ']' {
					inClass = false
				} else if src[i] == c && !inClass {
					break
				}
			}
			out.WriteString(src[start:min(i+1, len(src))])
			last = c
		default:
			out.WriteByte(c)
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				last = c
			}
		}
	}
	return out.String()
}
