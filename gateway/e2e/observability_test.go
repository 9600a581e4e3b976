package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"segments/gateway/internal/testutil"
)

// The X-Request-Id a client sends comes back on the answer (a read, a
// mutation, the server's 401), one the gateway makes comes back when the
// client's is junk or missing, and the access log line of each request has
// it; /metrics (no token) counts each request under its route pattern.
func TestRequestIDRoundTripAndGatewayMetrics(t *testing.T) {
	reset(t)
	createUser(t, "1")
	const getRoute = "/segments/get-for-user"
	requests := map[string]string{"route": getRoute, "method": "GET", "code": "200"}
	before, err := testutil.Scrape(httpClient, baseURL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	countBefore, _ := before.Value("segments_gateway_http_requests_total", requests)

	ids := map[string]string{} // sent -> answered
	for _, c := range []struct {
		role, method, path, body, sent string
		status                         int
	}{
		{"admin", http.MethodGet, getRoute + "?userID=1", "", "e2e-read-1", http.StatusOK},
		{"admin", http.MethodPost, "/segments/create", `{"slug":"AVITO_VOICE_MESSAGES"}`, "e2e-write-1", http.StatusNoContent},
		{"", http.MethodGet, getRoute + "?userID=1", "", "e2e-no-token-1", http.StatusUnauthorized},
		{"admin", http.MethodGet, "/no/such/path", "", "e2e-404", http.StatusNotFound},
		{"admin", http.MethodGet, getRoute + "?userID=1", "", "has space", http.StatusOK},
		{"admin", http.MethodGet, getRoute + "?userID=1", "", "", http.StatusOK},
	} {
		header := http.Header{}
		if c.sent != "" {
			header.Set("X-Request-Id", c.sent)
		}
		header.Set("Authorization", noAuthorization)
		if c.role != "" {
			header.Set("Authorization", "Bearer "+tokens[c.role])
		}
		r, err := fetchWith(baseURL, c.method, c.path, c.body, header)
		if err != nil {
			t.Fatal(err)
		}
		got := r.header.Get("X-Request-Id")
		if r.status != c.status {
			t.Errorf("%s %s (%q): status %d, want %d: %s", c.method, c.path, c.sent, r.status, c.status, r.body)
		}
		switch c.sent {
		case "", "has space":
			if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(got) {
				t.Errorf("%s %s (%q): X-Request-Id %q, want a generated one", c.method, c.path, c.sent, got)
			}
		default:
			if got != c.sent {
				t.Errorf("%s %s: X-Request-Id %q, want %q", c.method, c.path, got, c.sent)
			}
		}
		ids[c.sent] = got
	}

	// Each request's access log line carries its id and route, not the query.
	logged := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(gatewayLog.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "http" {
			if id, ok := m["request_id"].(string); ok {
				logged[id] = m
			}
		}
	}
	for sent, id := range ids {
		m := logged[id]
		if m == nil {
			t.Errorf("no access log line with request_id %q (sent %q)", id, sent)
			continue
		}
		if strings.Contains(m["path"].(string), "?") {
			t.Errorf("access log line with the query: %v", m)
		}
	}
	if m := logged["e2e-read-1"]; m != nil && m["route"] != getRoute {
		t.Errorf("access log line of e2e-read-1: route %v", m["route"])
	}
	if m := logged["e2e-404"]; m != nil && m["route"] != "unmatched" {
		t.Errorf("access log line of e2e-404: route %v", m["route"])
	}

	// The metrics endpoint needs no token.
	after, err := testutil.Scrape(&http.Client{Transport: noTokenTransport{}}, baseURL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if countAfter, _ := after.Value("segments_gateway_http_requests_total", requests); countAfter-countBefore != 3 {
		t.Errorf("GET %s answered 200 counted %v times, want 3\n%q", getRoute, countAfter-countBefore, after.LabelSets("segments_gateway_http_requests_total"))
	}
	if v, _ := after.Value("segments_gateway_http_requests_total", map[string]string{"route": getRoute, "method": "GET", "code": "401"}); v < 1 {
		t.Errorf("the 401 was not counted: %v", v)
	}
	if v, _ := after.Value("segments_gateway_http_requests_total", map[string]string{"route": "unmatched", "method": "GET", "code": "404"}); v < 1 {
		t.Errorf("the 404 was not counted under unmatched: %v", v)
	}
	if strings.Contains(after.Raw, "/no/such/path") {
		t.Error("a raw path is a label")
	}
}

// noTokenTransport sends requests as they are, with no Authorization.
type noTokenTransport struct{}

func (noTokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", noAuthorization)
	return http.DefaultTransport.RoundTrip(r)
}
