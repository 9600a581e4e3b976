// Package metrics holds the mock's Prometheus metrics (client_golang, on a
// registry of its own): the users it holds, the events the broker
// acknowledged, the lookups of userservice.v1.UserService by gRPC code, and
// the Go runtime and process collectors.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Path is where the metrics are served.
const Path = "/metrics"

// LookupService is the service whose calls count as lookups.
const LookupService = "userservice.v1.UserService"

// Metrics is the mock's metrics on their registry.
type Metrics struct {
	registry *prometheus.Registry
	lookups  *prometheus.CounterVec
}

// New registers the metrics on a new registry: users() is the number of
// users in the store and published() the number of events acknowledged,
// both read at scrape time.
func New(users func() int, published func() int64) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segments_usermock_lookups_total",
			Help: "Calls of " + LookupService + " (GetUser, BatchGetUsers) answered, by gRPC status code.",
		}, []string{"code"}),
	}
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "segments_usermock_users",
			Help: "Users the mock holds (active and excluded).",
		}, func() float64 { return float64(users()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "segments_usermock_events_published_total",
			Help: "User events the Kafka broker acknowledged.",
		}, func() float64 { return float64(published()) }),
		m.lookups,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every code is there from the start at 0, so rates need no absent series.
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		m.lookups.WithLabelValues(CodeName(c))
	}
	return m
}

// Registry is where the metrics are registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Path, promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry}))
	return mux
}

// UnaryInterceptor counts the calls of LookupService by their code.
func (m *Metrics) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if strings.HasPrefix(info.FullMethod, "/"+LookupService+"/") {
		m.lookups.WithLabelValues(CodeName(status.Code(err))).Inc()
	}
	return resp, err
}

// Serve serves the metrics on lis until Close.
func (m *Metrics) Serve(lis net.Listener) *Server {
	s := &Server{http: &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}, lis: lis, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s
}

// Server is a running metrics endpoint.
type Server struct {
	http *http.Server
	lis  net.Listener
	done chan struct{}
	err  error
}

// Addr is the bound address, host:port.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Close stops serving (a scrape in progress gets up to 2 s).
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	<-s.done
	if err == nil {
		err = s.err
	}
	return err
}

// CodeName is a code's canonical name, as the server's grpc_code label
// spells it: OK, NOT_FOUND, UNAVAILABLE...
func CodeName(c codes.Code) string {
	if name, ok := codeNames[c]; ok {
		return name
	}
	return "UNKNOWN"
}

var codeNames = map[codes.Code]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}
