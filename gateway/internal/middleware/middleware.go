// Package middleware holds the HTTP wrappers around the gateway's mux:
// the route of each request, access logs, the request body limit and the
// upstream deadline.
package middleware

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"segments/gateway/internal/httperr"
	"segments/gateway/internal/requestid"
)

// Chain applies wrappers so that the first one listed runs first.
func Chain(h http.Handler, wrappers ...func(http.Handler) http.Handler) http.Handler {
	for i := len(wrappers) - 1; i >= 0; i-- {
		h = wrappers[i](h)
	}
	return h
}

// Unmatched is the route of a request that matches no route.
const Unmatched = "unmatched"

// routeSlot holds a request's route pattern: set by Routes from the path,
// and by the handler that routes the request, when it knows better (a
// grpc-gateway pattern with variables).
type routeSlot struct{ pattern string }

type routeKey struct{}

// Routes names each request's route for the access log and the metrics:
// resolve maps a path to its route pattern, "" when none matches
// (Unmatched). Handlers further in may refine it with SetRoute.
func Routes(resolve func(path string) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			slot := &routeSlot{pattern: resolve(r.URL.Path)}
			if slot.pattern == "" {
				slot.pattern = Unmatched
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, slot)))
		})
	}
}

// SetRoute records the route pattern the request was routed by; outside
// Routes it does nothing.
func SetRoute(ctx context.Context, pattern string) {
	if slot, ok := ctx.Value(routeKey{}).(*routeSlot); ok && pattern != "" {
		slot.pattern = pattern
	}
}

// Route is the request's route pattern: a template such as
// "/segments/get-for-user", never the raw path; Unmatched when none
// matched or outside Routes.
func Route(ctx context.Context) string {
	if slot, ok := ctx.Value(routeKey{}).(*routeSlot); ok {
		return slot.pattern
	}
	return Unmatched
}

// statusRecorder remembers what the handler answered, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush keeps streamed responses streaming through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// AccessLog writes one line per request: method, path, route, status, size,
// duration and request id. Never the query (it carries user ids), bodies,
// cookies or authorization headers.
func AccessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			logger.Info("http",
				"method", r.Method,
				"path", r.URL.Path,
				"route", Route(r.Context()),
				"status", rec.status,
				"bytes", rec.bytes,
				"duration_ms", float64(time.Since(start).Microseconds())/1000,
				"remote", r.RemoteAddr,
				"request_id", requestid.FromContext(r.Context()))
		})
	}
}

// LimitBody answers 413 in the error envelope when the body is larger than
// `limit` bytes; otherwise the handler gets the body as read.
func LimitBody(limit int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(w, r)
				return
			}
			if r.ContentLength > limit {
				tooLarge(w, limit)
				return
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			if err != nil {
				httperr.Write(w, http.StatusBadRequest, httperr.One(httperr.TypeParse, "cannot read the request body"))
				return
			}
			if int64(len(body)) > limit {
				tooLarge(w, limit)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			next.ServeHTTP(w, r)
		})
	}
}

func tooLarge(w http.ResponseWriter, limit int64) {
	httperr.Write(w, http.StatusRequestEntityTooLarge,
		httperr.One(httperr.TypeTooLarge, "request body is larger than "+byteCount(limit)))
}

func byteCount(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " bytes"
	}
}

// RequireUTF8Query answers 400 parse_error when the query string is not
// valid percent-encoded UTF-8, before any of it reaches a proto string.
func RequireUTF8Query(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			httperr.Write(w, http.StatusBadRequest, httperr.One(httperr.TypeParse, "cannot parse the query string"))
			return
		}
		for key, list := range values {
			for _, v := range append([]string{key}, list...) {
				if !utf8.ValidString(v) {
					httperr.Write(w, http.StatusBadRequest,
						httperr.One(httperr.TypeParse, "query parameter "+strconv.Quote(key)+" is not valid UTF-8"))
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Deadline bounds each request's call to the upstream.
func Deadline(timeout time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// BearerChallenge adds "WWW-Authenticate: Bearer" to every 401 answer
// (RFC 6750), whichever route or error path wrote it, so that clients and
// Swagger UI know to send a token.
func BearerChallenge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&challenger{ResponseWriter: w}, r)
	})
}

// BearerChallengeValue is the header's value.
const BearerChallengeValue = `Bearer realm="segments"`

type challenger struct{ http.ResponseWriter }

func (c *challenger) WriteHeader(code int) {
	if code == http.StatusUnauthorized && c.Header().Get("WWW-Authenticate") == "" {
		c.Header().Set("WWW-Authenticate", BearerChallengeValue)
	}
	c.ResponseWriter.WriteHeader(code)
}

// Flush keeps streamed responses streaming.
func (c *challenger) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
