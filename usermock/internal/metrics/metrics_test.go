package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Scrape reads url's metrics as Prometheus would parse them.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %q", url, resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, body)
	}
	// name{l="v"} -> value, for the counters and gauges
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name
			if len(m.GetLabel()) > 0 {
				var pairs []string
				for _, l := range m.GetLabel() {
					pairs = append(pairs, l.GetName()+"="+l.GetValue())
				}
				key += "{" + strings.Join(pairs, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			default:
				out[key] = -1 // present
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	users, published := 0, int64(0)
	m := New(func() int { return users }, func() int64 { return published })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := m.Serve(lis)
	url := "http://" + srv.Addr() + Path

	lookup := func(method string, err error) {
		_, _ = m.UnaryInterceptor(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: method},
			func(context.Context, any) (any, error) { return nil, err })
	}
	lookup("/userservice.v1.UserService/GetUser", nil)
	lookup("/userservice.v1.UserService/GetUser", status.Error(codes.NotFound, "no"))
	lookup("/userservice.v1.UserService/BatchGetUsers", nil)
	lookup("/userservice.v1.UserService/GetUser", errors.New("not a status"))
	lookup("/usermock.v1.UserMockAdmin/CreateUser", nil) // not a lookup
	lookup("/grpc.health.v1.Health/Check", nil)          // nor this
	users, published = 7, 5

	got := scrape(t, url)
	for key, want := range map[string]float64{
		"segments_usermock_users":                           7,
		"segments_usermock_events_published_total":          5,
		"segments_usermock_lookups_total{code=OK}":          2,
		"segments_usermock_lookups_total{code=NOT_FOUND}":   1,
		"segments_usermock_lookups_total{code=UNKNOWN}":     1,
		"segments_usermock_lookups_total{code=UNAVAILABLE}": 0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	if resp, err := http.Get("http://" + srv.Addr() + "/other"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: %v %v", resp, err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url); err == nil {
		t.Fatal("still serving after Close")
	}
	// Nothing in the global registry.
	families, _ := prometheus.DefaultGatherer.Gather()
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "segments_usermock") {
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
	m := New(func() int { return 1 }, func() int64 { return 2 })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := m.Serve(lis)
	defer srv.Close()
	resp, err := http.Get("http://" + srv.Addr() + Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = resp.Body
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
