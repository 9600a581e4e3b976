package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"segments/gateway/internal/middleware"
	"segments/gateway/internal/testutil"
)

// resolve knows one route, as the gateway's route table would.
func resolve(path string) string {
	if path == "/segments/get-for-user" || path == Path {
		return path
	}
	return ""
}

// handler is the metrics middleware inside middleware.Routes over inner,
// with /metrics served as the gateway serves it.
func handler(m *HTTP, inner http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Path, m.Handler())
	mux.Handle("/", inner)
	return middleware.Chain(mux, middleware.Routes(resolve), m.Middleware)
}

func serve(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func scrape(t *testing.T, h http.Handler) testutil.Metrics {
	t.Helper()
	rec := serve(t, h, http.MethodGet, Path)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %q", rec.Code, rec.Body.String())
	}
	m, err := testutil.ParseMetrics(rec.Body.String())
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, rec.Body.String())
	}
	return m
}

const userID = "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b"

// Requests count by route pattern (never the raw path: an unknown path is
// "unmatched"), method and status; the latency histogram by route and method.
func TestRequestsCountByRoutePatternMethodAndCode(t *testing.T) {
	m := New("1.2.3")
	h := handler(m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/segments/get-for-user":
			http.NotFound(w, r)
		case r.URL.Query().Get("userID") == "":
			w.WriteHeader(http.StatusBadRequest)
		default:
			_, _ = io.WriteString(w, `{"segments":[]}`) // 200 without WriteHeader
		}
	}))
	serve(t, h, http.MethodGet, "/segments/get-for-user?userID="+userID)
	serve(t, h, http.MethodGet, "/segments/get-for-user?userID="+userID)
	serve(t, h, http.MethodGet, "/segments/get-for-user")
	serve(t, h, http.MethodGet, "/users/"+userID+"/segments")
	serve(t, h, "BREW", "/users/"+userID)

	got := scrape(t, h)
	if strings.Contains(got.Raw, userID) || strings.Contains(got.Raw, "/users/") {
		t.Fatalf("a raw path reached the labels:\n%s", got.Raw)
	}
	want := []string{
		"code=200,method=GET,route=/segments/get-for-user",
		"code=400,method=GET,route=/segments/get-for-user",
		"code=404,method=GET,route=unmatched",
		"code=404,method=OTHER,route=unmatched",
	}
	if sets := got.LabelSets("segments_gateway_http_requests_total"); strings.Join(sets, " ") != strings.Join(want, " ") {
		t.Fatalf("label sets %q, want %q", sets, want)
	}
	for labels, n := range map[[3]string]float64{
		{"/segments/get-for-user", "GET", "200"}: 2,
		{"/segments/get-for-user", "GET", "400"}: 1,
		{"unmatched", "GET", "404"}:              1,
	} {
		v, _ := got.Value("segments_gateway_http_requests_total", map[string]string{"route": labels[0], "method": labels[1], "code": labels[2]})
		if v != n {
			t.Errorf("requests %v = %v, want %v", labels, v, n)
		}
	}
	if v, _ := got.Value("segments_gateway_http_request_duration_seconds", map[string]string{"route": "/segments/get-for-user", "method": "GET"}); v != 3 {
		t.Errorf("duration samples of get-for-user = %v, want 3", v)
	}
	if v, ok := got.Value("segments_gateway_build_info", map[string]string{"version": "1.2.3"}); !ok || v != 1 {
		t.Errorf("build info = %v %v", v, ok)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds"} {
		if got.Families[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	// The scrape itself is counted (on the next one).
	if v, _ := scrape(t, h).Value("segments_gateway_http_requests_total", map[string]string{"route": "/metrics", "method": "GET", "code": "200"}); v != 1 {
		t.Errorf("scrapes counted %v, want 1", v)
	}
}

// The in-flight gauge counts a request while it runs and returns to 0,
// also when the handler panics (an aborted download); the panicking request
// counts with the status it had sent.
func TestInFlightReturnsToZero(t *testing.T) {
	m := New("dev")
	entered, release := make(chan struct{}), make(chan struct{})
	h := handler(m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("panic") != "" {
			w.WriteHeader(http.StatusOK)
			panic(http.ErrAbortHandler)
		}
		close(entered)
		<-release
		w.WriteHeader(http.StatusNoContent)
	}))
	inFlight := func() float64 {
		v, _ := scrape(t, h).Value("segments_gateway_http_requests_in_flight", map[string]string{})
		return v - 1 // the scrape is in flight too
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(t, h, http.MethodPost, "/segments/get-for-user")
	}()
	<-entered
	if v := inFlight(); v != 1 {
		t.Fatalf("in flight during a request: %v, want 1", v)
	}
	close(release)
	<-done
	if v := inFlight(); v != 0 {
		t.Fatalf("in flight after it: %v, want 0", v)
	}

	func() {
		defer func() {
			if recover() != http.ErrAbortHandler {
				t.Error("the panic did not pass through")
			}
		}()
		serve(t, h, http.MethodGet, "/segments/get-for-user?panic=1")
	}()
	got := scrape(t, h)
	if v, _ := got.Value("segments_gateway_http_requests_in_flight", map[string]string{}); v != 1 {
		t.Fatalf("in flight after a panic: %v, want 0 (+1 scrape)", v)
	}
	if v, _ := got.Value("segments_gateway_http_requests_total", map[string]string{"route": "/segments/get-for-user", "method": "GET", "code": "200"}); v != 1 {
		t.Fatalf("the aborted request counted %v times as 200", v)
	}
}

// A handler further in refines the route (grpc-gateway's pattern).
func TestSetRouteWins(t *testing.T) {
	m := New("dev")
	h := handler(m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		middleware.SetRoute(r.Context(), "/users/{user_id}/segments")
		w.WriteHeader(http.StatusOK)
	}))
	serve(t, h, http.MethodGet, "/users/"+userID+"/segments")
	if v, _ := scrape(t, h).Value("segments_gateway_http_requests_total",
		map[string]string{"route": "/users/{user_id}/segments", "method": "GET", "code": "200"}); v != 1 {
		t.Fatalf("requests of the refined route: %v", v)
	}
}

// Each New has its own registry: tests and handlers do not share counts,
// and nothing lands in the global default registry.
func TestRegistriesAreSeparate(t *testing.T) {
	a, b := New("dev"), New("dev")
	serve(t, handler(a, http.NotFoundHandler()), http.MethodGet, "/x")
	if v, ok := scrape(t, handler(b, http.NotFoundHandler())).Value("segments_gateway_http_requests_total",
		map[string]string{"route": "unmatched", "method": "GET", "code": "404"}); ok {
		t.Fatalf("b counted a's request: %v", v)
	}
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "segments_gateway") {
			t.Fatalf("%s is in the default registry", f.GetName())
		}
	}
}

// The exposition passes Prometheus's own checker (promtool, Debian's
// prometheus package), when it is installed.
func TestPromtoolChecksTheExposition(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed")
	}
	m := New("dev")
	h := handler(m, http.NotFoundHandler())
	serve(t, h, http.MethodGet, "/segments/get-for-user")
	rec := serve(t, h, http.MethodGet, Path)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(rec.Body.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
