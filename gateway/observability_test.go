package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
	"segments/gateway/internal/metrics"
	"segments/gateway/internal/testutil"
)

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// withID sends these X-Request-Id headers (none: nil) and more headers as
// name, value pairs.
func withID(ids []string, more ...string) http.Header {
	h := http.Header{}
	for _, id := range ids {
		h.Add("X-Request-Id", id)
	}
	for i := 0; i+1 < len(more); i += 2 {
		h.Add(more[i], more[i+1])
	}
	return h
}

// accessLines are the access log lines (msg "http") written so far.
func accessLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m["msg"] == "http" {
			out = append(out, m)
		}
	}
	return out
}

// The id a client sends is kept when sane, replaced when not, made when
// missing; either way the answer, the upstream call (metadata x-request-id,
// exactly one value: a client's Grpc-Metadata-X-Request-Id cannot forge it)
// and the access log line carry the same id.
func TestRequestIDReachesTheAnswerTheUpstreamAndTheLog(t *testing.T) {
	h := newHarness(t, Options{})
	target := h.url + "/segments/get-for-user?userID=" + userID
	for _, tc := range []struct {
		name   string
		header http.Header
		want   string // "" : a generated one
	}{
		{"sane", withID([]string{"client-42"}), "client-42"},
		{"sane, forged metadata", withID([]string{"client-43"}, "Grpc-Metadata-X-Request-Id", "forged"), "client-43"},
		{"missing", withID(nil), ""},
		{"missing, forged metadata", withID(nil, "Grpc-Metadata-X-Request-Id", "forged"), ""},
		{"space", withID([]string{"a b"}), ""},
		{"too long", withID([]string{strings.Repeat("x", 129)}), ""},
		{"not ASCII", withID([]string{"é"}), ""},
		{"two", withID([]string{"a", "b"}), ""},
	} {
		r := doWith(t, http.MethodGet, target, nil, tc.header)
		if r.status != http.StatusOK {
			t.Fatalf("%s: status %d %q", tc.name, r.status, r.body)
		}
		id := r.header.Get("X-Request-Id")
		if tc.want != "" && id != tc.want || tc.want == "" && !generatedID.MatchString(id) {
			t.Errorf("%s: answered X-Request-Id %q, want %q (\"\": generated)", tc.name, id, tc.want)
		}
		calls := h.backend.takeCalls()
		if len(calls) != 1 || calls[0].method != "/segmentation.v1.SegmentService/GetUserSegments" ||
			len(calls[0].requestIDs) != 1 || calls[0].requestIDs[0] != id {
			t.Errorf("%s: upstream calls %+v, want GetUserSegments with x-request-id [%s]", tc.name, calls, id)
		}
		lines := accessLines(t, h.logs.String())
		if last := lines[len(lines)-1]; last["request_id"] != id || last["route"] != "/segments/get-for-user" {
			t.Errorf("%s: access log line %v, want request_id %s", tc.name, last, id)
		}
	}
	if strings.Contains(h.logs.String(), userID) {
		t.Fatalf("the access log names the user: %s", h.logs.String())
	}
}

// Every answer has the id: errors of every origin, 401s, streams, HEAD,
// /healthz, /metrics and Swagger UI; the upstream calls behind them get it.
func TestRequestIDOnEveryAnswer(t *testing.T) {
	h := newHarness(t, Options{MaxBodyBytes: 64})
	h.backend.set(func(f *fakeBackend) { f.batches = []*segmentationv1.StreamSegmentMembersResponse{members(userID)} })
	for i, tc := range []struct {
		method, path, body string
		status             int
		upstream           string // the method called, if any
	}{
		{http.MethodGet, "/users/" + userID + "/segments", "", http.StatusNotFound, ""},
		{http.MethodPost, "/segments/get-for-user", "", http.StatusMethodNotAllowed, ""},
		{http.MethodPost, "/segments/create", `{"slug":"` + strings.Repeat("A", 100) + `"}`, http.StatusRequestEntityTooLarge, ""},
		{http.MethodGet, "/segments/get-for-user?userID=%ff", "", http.StatusBadRequest, ""},
		{http.MethodGet, "/segments/stream-members?slug=AVITO_DISCOUNT_30", "", http.StatusOK, "/segmentation.v1.SegmentService/StreamSegmentMembers"},
		{http.MethodHead, "/segments/get-for-user?userID=" + userID, "", http.StatusOK, "/segmentation.v1.SegmentService/GetUserSegments"},
		{http.MethodGet, "/healthz", "", http.StatusOK, "/grpc.health.v1.Health/Check"},
		{http.MethodGet, "/metrics", "", http.StatusOK, ""},
		{http.MethodGet, "/swagger/index.html", "", http.StatusOK, ""},
	} {
		id := "id-" + strconv.Itoa(i)
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		r := doWith(t, tc.method, h.url+tc.path, body, withID([]string{id}))
		if r.status != tc.status || r.header.Get("X-Request-Id") != id {
			t.Errorf("%s %s: %d X-Request-Id %q, want %d %q", tc.method, tc.path, r.status, r.header.Get("X-Request-Id"), tc.status, id)
		}
		calls := h.backend.takeCalls()
		switch {
		case tc.upstream == "" && len(calls) != 0:
			t.Errorf("%s %s: upstream calls %+v", tc.method, tc.path, calls)
		case tc.upstream != "" && (len(calls) != 1 || calls[0].method != tc.upstream || strings.Join(calls[0].requestIDs, ",") != id):
			t.Errorf("%s %s: upstream calls %+v, want %s with [%s]", tc.method, tc.path, calls, tc.upstream, id)
		}
	}

	// The server's 401 (no or a bad token) and 5xx answers.
	for code, want := range map[codes.Code]int{codes.Unauthenticated: http.StatusUnauthorized, codes.Unavailable: http.StatusServiceUnavailable} {
		h.backend.set(func(f *fakeBackend) { f.err = status.Error(code, "no") })
		r := doWith(t, http.MethodGet, h.url+"/segments/get-for-user?userID="+userID, nil, withID([]string{"err-" + code.String()}))
		if r.status != want || r.header.Get("X-Request-Id") != "err-"+code.String() {
			t.Errorf("upstream %v: %d X-Request-Id %q", code, r.status, r.header.Get("X-Request-Id"))
		}
		if calls := h.backend.takeCalls(); len(calls) != 1 || strings.Join(calls[0].requestIDs, ",") != "err-"+code.String() {
			t.Errorf("upstream %v: calls %+v", code, calls)
		}
	}
}

// The report download, a route of its own, passes the id on too.
func TestRequestIDOnReportDownloads(t *testing.T) {
	backend := &fakeHistoryBackend{chunks: []string{"user_id;segment;operation;datetime\n"}}
	h := newHistoryHarness(t, Options{}, backend)
	r := doWith(t, http.MethodGet, h.url+"/segments/history-report?year=2023&month=8&expires=1693540800&key=k&signature=s",
		nil, withID([]string{"report-1"}))
	if r.status != http.StatusOK || r.header.Get("X-Request-Id") != "report-1" {
		t.Fatalf("%d X-Request-Id %q", r.status, r.header.Get("X-Request-Id"))
	}
	backend.mu.Lock()
	defer backend.mu.Unlock()
	if len(backend.requestIDs) != 1 || strings.Join(backend.requestIDs[0], ",") != "report-1" {
		t.Fatalf("upstream x-request-id %q", backend.requestIDs)
	}
}

// /metrics is served without a token, beside the API (no API route takes
// its path), and counts requests by route pattern: the path of a route,
// "unmatched" for any other path, never a raw path with ids in it.
func TestMetricsCountRequestsByRoute(t *testing.T) {
	if routedPaths()[metrics.Path] != nil {
		t.Fatalf("an API route takes %s", metrics.Path)
	}
	h := newHarness(t, Options{Version: "v9.9.9"})
	h.do(t, http.MethodGet, "/segments/get-for-user?userID="+userID, "")
	h.do(t, http.MethodGet, "/segments/get-for-user/?userID="+userID, "")
	h.do(t, http.MethodPost, "/segments/get-for-user", "")
	h.do(t, http.MethodPost, "/segments/create", `{"slug":"A"}`)
	h.do(t, http.MethodGet, "/users/"+userID+"/segments", "")
	h.do(t, http.MethodGet, "/swagger/index.html", "")

	req, _ := http.NewRequest(http.MethodGet, h.url+"/metrics", nil)
	if req.Header.Get("Authorization") != "" {
		t.Fatal("the test client sends a token")
	}
	got, err := testutil.Scrape(nil, h.url+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got.Raw, userID) || strings.Contains(got.Raw, "/users/") {
		t.Fatalf("a raw path is in the metrics:\n%s", got.Raw)
	}
	const requests = "segments_gateway_http_requests_total"
	for _, c := range []struct {
		route, method, code string
		n                   float64
	}{
		{"/segments/get-for-user", "GET", "200", 2},
		{"/segments/get-for-user", "POST", "405", 1},
		{"/segments/create", "POST", "204", 1},
		{"unmatched", "GET", "404", 1},
		{"/swagger/", "GET", "200", 1},
	} {
		if v, _ := got.Value(requests, map[string]string{"route": c.route, "method": c.method, "code": c.code}); v != c.n {
			t.Errorf("%s{route=%q,method=%q,code=%q} = %v, want %v\nall: %q", requests, c.route, c.method, c.code, v, c.n, got.LabelSets(requests))
		}
	}
	if v, _ := got.Value("segments_gateway_http_request_duration_seconds", map[string]string{"route": "/segments/get-for-user", "method": "GET"}); v != 2 {
		t.Errorf("latency samples of GET get-for-user: %v, want 2", v)
	}
	if v, _ := got.Value("segments_gateway_http_requests_in_flight", map[string]string{}); v != 1 {
		t.Errorf("in flight during the scrape: %v, want 1 (the scrape)", v)
	}
	if v, ok := got.Value("segments_gateway_build_info", map[string]string{"version": "v9.9.9"}); !ok || v != 1 {
		t.Errorf("build info: %v %v", v, ok)
	}
	if got.Families["go_goroutines"] == nil || got.Families["process_cpu_seconds_total"] == nil {
		t.Error("no Go or process collector")
	}
	// Two handlers, two registries: a second gateway starts from zero.
	other := newHarness(t, Options{})
	fresh, err := testutil.Scrape(nil, other.url+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := fresh.Value(requests, map[string]string{"route": "/segments/get-for-user", "method": "GET", "code": "200"}); ok {
		t.Fatalf("a new handler starts with %v requests", v)
	}
}
