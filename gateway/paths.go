package gateway

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"segments/gateway/internal/httperr"
	"segments/gateway/internal/metrics"
	"segments/gateway/internal/middleware"
)

// pathMethods maps each exact path the gateway routes to the HTTP methods
// it serves there.
type pathMethods map[string][]string

// routedPaths are the REST routes of every service in package
// segmentation.v1, read from the protos, plus /healthz.
func routedPaths() pathMethods {
	out := pathMethods{"/healthz": {http.MethodGet}}
	protoregistry.GlobalFiles.RangeFilesByPackage("segmentation.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			methods := fd.Services().Get(i).Methods()
			for j := 0; j < methods.Len(); j++ {
				for _, r := range httpRoutes(methods.Get(j)) {
					if !slices.Contains(out[r.path], r.method) {
						out[r.path] = append(out[r.path], r.method)
					}
				}
			}
		}
		return true
	})
	return out
}

// route is the route pattern of a request's path for logs and metrics: the
// path itself when it is a route (or one with a trailing slash), "/swagger/"
// and "/console/" for anything under them, /metrics; "" for any other path.
// grpc-gateway's pattern replaces it once the mux has routed the request
// (routePattern).
func (p pathMethods) route(path string) string {
	if trimmed, ok := strings.CutSuffix(path, "/"); ok && p[trimmed] != nil {
		path = trimmed
	}
	switch {
	case p[path] != nil, path == metrics.Path:
		return path
	case path == "/swagger", strings.HasPrefix(path, "/swagger/"):
		return "/swagger/"
	case path == "/console", strings.HasPrefix(path, "/console/"):
		return "/console/"
	}
	return ""
}

// routePattern names the request's route by the pattern grpc-gateway
// matched, for logs and metrics. It runs inside grpc-gateway's mux.
func routePattern(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if pattern, ok := runtime.HTTPPattern(r.Context()); ok {
			middleware.SetRoute(r.Context(), pattern.String())
		}
		next(w, r, params)
	}
}

// allow is the Allow header of a path: its methods, and HEAD wherever GET
// is served, sorted.
func (p pathMethods) allow(path string) string {
	methods := slices.Clone(p[path])
	if slices.Contains(methods, http.MethodGet) && !slices.Contains(methods, http.MethodHead) {
		methods = append(methods, http.MethodHead)
	}
	slices.Sort(methods)
	return strings.Join(methods, ", ")
}

// servePaths does what the routes' muxes do not, before them:
//   - a known path with a trailing slash is served as the path without it
//     (/segments/create/), as the original service did;
//   - HEAD on a GET route is served as that GET, with no body (net/http
//     drops it for a HEAD request, and keeps the status and headers; the
//     upstream call is cancelled once the first bytes are written, so a
//     streamed answer is not read to its end). Paths in ownHead answer HEAD
//     themselves;
//   - any other method on a known path is 405 in the envelope, with Allow.
//
// Unknown paths go on unchanged (the muxes answer 404, or serve /swagger/).
func servePaths(paths pathMethods, ownHead ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if trimmed, ok := strings.CutSuffix(r.URL.Path, "/"); ok && paths[trimmed] != nil {
				r = withPath(r, trimmed)
			}
			methods := paths[r.URL.Path]
			switch {
			case methods == nil || slices.Contains(methods, r.Method):
				next.ServeHTTP(w, r)
			case r.Method == http.MethodHead && slices.Contains(methods, http.MethodGet):
				if slices.Contains(ownHead, r.URL.Path) {
					next.ServeHTTP(w, r)
					return
				}
				ctx, cancel := context.WithCancel(r.Context())
				defer cancel()
				get := r.WithContext(ctx)
				get.Method = http.MethodGet
				next.ServeHTTP(&headWriter{ResponseWriter: w, done: cancel}, get)
			default:
				methodNotAllowed(w, r, paths)
			}
		})
	}
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, paths pathMethods) {
	if allow := paths.allow(r.URL.Path); allow != "" {
		w.Header().Set("Allow", allow)
	}
	httperr.Write(w, http.StatusMethodNotAllowed,
		httperr.One(httperr.TypeMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path))
}

// routingErrorHandler is httperr's, with Allow on a 405 (which servePaths
// answers before grpc-gateway could; this keeps the header if one slips by).
func routingErrorHandler(paths pathMethods) runtime.RoutingErrorHandlerFunc {
	return func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
		if code == http.StatusMethodNotAllowed {
			methodNotAllowed(w, r, paths)
			return
		}
		httperr.RoutingErrorHandler(ctx, mux, m, w, r, code)
	}
}

// withPath is r for another path.
func withPath(r *http.Request, path string) *http.Request {
	out := r.Clone(r.Context())
	out.URL.Path = path
	if out.URL.RawPath != "" {
		out.URL.RawPath = strings.TrimSuffix(out.URL.RawPath, "/")
	}
	return out
}

// headWriter answers a HEAD request served as a GET: what is written goes
// to net/http, which sends the headers and drops the body; after the first
// write, done stops the upstream call.
type headWriter struct {
	http.ResponseWriter
	done func()
}

func (w *headWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.done()
	return n, err
}

// Flush keeps the headers of a streamed answer going out at once.
func (w *headWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
