// Package metrics holds the gateway's Prometheus metrics (client_golang, on
// a registry of its own): HTTP requests by route pattern, method and status,
// their latency, the requests in flight, build info, and the Go runtime and
// process collectors. Names: docs/operating.md.
package metrics

import (
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"segments/gateway/internal/middleware"
)

// Path is where the gateway serves its metrics, without authentication.
const Path = "/metrics"

// DurationBuckets of segments_gateway_http_request_duration_seconds, in
// seconds: from a cached read (well under a millisecond of gateway work plus
// the upstream call) to the long calls on whole segments.
var DurationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// HTTP is the gateway's metrics on their registry.
type HTTP struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// New registers the gateway's metrics, with build info of version, and the
// Go and process collectors on a new registry.
func New(version string) *HTTP {
	m := &HTTP{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segments_gateway_http_requests_total",
			Help: "HTTP requests answered, by route pattern (\"unmatched\" when none matched), method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "segments_gateway_http_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by route pattern and method.",
			Buckets: DurationBuckets,
		}, []string{"route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "segments_gateway_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "segments_gateway_build_info",
		Help:        "Always 1; the version label names the gateway's build.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	buildInfo.Set(1)
	m.registry.MustRegister(m.requests, m.duration, m.inFlight, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics are registered.
func (m *HTTP) Registry() *prometheus.Registry { return m.registry }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *HTTP) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Middleware counts and times every request by its route pattern
// (middleware.Route: it runs inside middleware.Routes), method and status,
// and keeps the in-flight gauge. A request that ends in a panic (an
// aborted report download) counts with the status it had sent.
func (m *HTTP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			m.inFlight.Dec()
			route, method := middleware.Route(r.Context()), Method(r.Method)
			code := rec.status
			if code == 0 {
				code = http.StatusOK // net/http's answer to a handler that wrote nothing
			}
			m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
			m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rec, r)
	})
}

// Method is the method label: the standard methods as they are, anything
// else "OTHER", so that junk methods add no series.
func Method(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// Version is the build's version for segments_gateway_build_info: the main
// module's version when the binary was built from a tagged module, else
// "dev".
func Version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

// recorder remembers the status for the metrics.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush keeps streamed responses streaming.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
