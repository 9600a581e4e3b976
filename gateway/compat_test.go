package gateway

import (
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
)

// What the original service's HTTP clients send and expect, beyond the
// contract's exact spellings: keys in any case, trailing slashes, HEAD,
// Allow on a 405; and what they must not get: gRPC metadata, Go's error
// texts, nulls for absent values.

// Body keys match as encoding/json matches them, on every route, in nested
// messages too; the last of two keys for one field wins.
func TestBodyKeysMatchCaseInsensitively(t *testing.T) {
	h := newHarness(t, Options{})
	noContent(t, h.do(t, http.MethodPost, "/segments/change-for-user",
		`{"UserID":"`+userID+`","SEGMENTSTOADD":[{"segmentslug":"A","SecondsToBeInSegment":300},`+
			`{"SegmentSlug":"B","deadlineforstayinginsegment":"2030-01-02T03:04:05Z"}],"SegmentsToRemove":[{"SEGMENTSLUG":"C"}]}`))
	noContent(t, h.do(t, http.MethodPost, "/segments/create", `{"Slug":"D","PercentToFill":12.5}`))
	noContent(t, h.do(t, http.MethodPost, "/segments/bulk-add", `{"SLUG":"D","userids":["`+userID+`"]}`))
	noContent(t, h.do(t, http.MethodPut, "/segments/update-user", `{"userId":"`+userID+`","Status":"excluded"}`))
	noContent(t, h.do(t, http.MethodPost, "/segments/create-user", `{"userID":"first","userId":"`+userID+`"}`))
	sameRequests(t, h.backend.take(),
		&segmentationv1.UpdateUserSegmentsRequest{
			UserId: userID,
			SegmentsToAdd: []*segmentationv1.UpdateUserSegmentsRequest_SegmentToAdd{
				{SegmentSlug: "A", SecondsToBeInSegment: proto.Int64(300)},
				{SegmentSlug: "B", DeadlineForStayingInSegment: timestamppb.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))},
			},
			SegmentsToRemove: []*segmentationv1.UpdateUserSegmentsRequest_SegmentToRemove{{SegmentSlug: "C"}},
		},
		&segmentationv1.CreateSegmentRequest{Slug: "D", PercentToFill: proto.Float64(12.5)},
		&segmentationv1.AddSegmentToUsersRequest{Slug: "D", UserIds: []string{userID}},
		&segmentationv1.UpdateUserRequest{UserId: userID, Status: "excluded"},
		&segmentationv1.CreateUserRequest{UserId: userID})
}

// A value the gateway cannot read is reported with its field and what it
// must be, not with protobuf-go's or strconv's words.
func TestParseErrorsNameTheField(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct{ method, path, body, info string }{
		{http.MethodPost, "/segments/create", `{"slug":5}`, `slug: must be a string, got 5`},
		{http.MethodPost, "/segments/change-for-user", `{"userID":"u","segmentsToAdd":[{"segmentSlug":"A"},{"SECONDSTOBEINSEGMENT":"soon"}]}`,
			`segmentsToAdd[1].secondsToBeInSegment: must be an integer, got "soon"`},
		{http.MethodPost, "/segments/create", `slug=X`,
			`request body is not valid JSON: invalid character 's' looking for beginning of value (at byte 1)`},
		{http.MethodGet, "/segments/get-history-report-link?month=&year=2023", "", `month: must be an integer, got ""`},
		{http.MethodGet, "/segments/get-for-user?userID=a&userID=b", "", `userID: given 2 times; give it once`},
		{http.MethodGet, "/segments/list-members?slug=A&pageSize=ten", "", `pageSize: must be an integer, got "ten"`},
		{http.MethodGet, "/segments/history-report?year=2023&month=aug", "", `report link: month: must be an integer, got "aug"`},
	}
	for _, tc := range tests {
		e := oneOfType(t, envelope(t, h.do(t, tc.method, tc.path, tc.body), http.StatusBadRequest), "parse_error")
		if e.Info != tc.info {
			t.Errorf("%s %s %s: info %q, want %q", tc.method, tc.path, tc.body, e.Info, tc.info)
		}
	}
	if got := h.backend.take(); len(got) != 0 {
		t.Fatalf("unreadable requests reached the upstream: %v", got)
	}
}

// A known path with a trailing slash is served as the path without it.
func TestTrailingSlashIsServedAsWithout(t *testing.T) {
	h := newHarness(t, Options{})
	noContent(t, h.do(t, http.MethodPost, "/segments/create/", `{"slug":"A"}`))
	noContent(t, h.do(t, http.MethodDelete, "/segments/remove-user/", `{"userID":"`+userID+`"}`))
	h.backend.set(func(f *fakeBackend) { f.segments = []string{"A"} })
	if r := h.do(t, http.MethodGet, "/segments/get-for-user/?userID="+userID, ""); r.status != http.StatusOK || string(r.body) != `{"segments":["A"]}` {
		t.Fatalf("get-for-user/: %d %s", r.status, r.body)
	}
	sameRequests(t, h.backend.take(),
		&segmentationv1.CreateSegmentRequest{Slug: "A"},
		&segmentationv1.DeleteUserRequest{UserId: userID},
		&segmentationv1.GetUserSegmentsRequest{UserId: userID})
	if r := h.do(t, http.MethodGet, "/healthz/", ""); r.status != http.StatusOK {
		t.Fatalf("/healthz/: %d %s", r.status, r.body)
	}
	// Every route of the protos, and a wrong method there is still a 405.
	for _, r := range protoRoutes(t) {
		if r.service == "HistoryService" {
			continue // not on this fake
		}
		body := ""
		if r.method != http.MethodGet {
			body = `{}`
		}
		if got := h.do(t, r.method, r.path+"/", body); got.status/100 != 2 {
			t.Errorf("%s %s/: status %d, body %s", r.method, r.path, got.status, got.body)
		}
		oneOfType(t, envelope(t, h.do(t, http.MethodPatch, r.path+"/", ""), http.StatusMethodNotAllowed), "method_not_allowed")
	}
	h.backend.take()
	// Only on known paths. (net/http redirects /segments/create// to
	// /segments/create/ with 307 before the gateway sees it.)
	for _, p := range []string{"/segments/nope/", "/segments/create/extra/", "/healthz/x/"} {
		oneOfType(t, envelope(t, h.do(t, http.MethodPost, p, `{"slug":"A"}`), http.StatusNotFound), "not_found")
	}
	if got := h.backend.take(); len(got) != 0 {
		t.Fatalf("unknown paths reached the upstream: %v", got)
	}
}

// headLike checks that HEAD answers what GET answers, with no body.
func headLike(t *testing.T, base, path string) {
	t.Helper()
	get := do(t, http.MethodGet, base+path, nil)
	head := do(t, http.MethodHead, base+path, nil)
	if head.status != get.status {
		t.Errorf("HEAD %s: status %d, GET %d (%s)", path, head.status, get.status, head.body)
	}
	if len(head.body) != 0 {
		t.Errorf("HEAD %s: a body %q", path, head.body)
	}
	for _, name := range []string{"Content-Type", "Content-Length", "Content-Disposition", "Allow"} {
		if name == "Content-Length" && head.header.Get(name) == "" {
			continue // HEAD may leave it out (the report link does: it stops before the file)
		}
		if head.header.Get(name) != get.header.Get(name) {
			t.Errorf("HEAD %s: %s %q, GET %q", path, name, head.header.Get(name), get.header.Get(name))
		}
	}
}

// HEAD works wherever GET does: every GET route of the protos, /healthz,
// Swagger and the report link.
func TestHeadOnEveryGetRoute(t *testing.T) {
	h := newHarness(t, Options{})
	h.backend.set(func(f *fakeBackend) {
		f.segments = []string{"A", "B"}
		f.batches = []*segmentationv1.StreamSegmentMembersResponse{members(userID)}
	})
	history := newHistoryHarness(t, Options{}, &fakeHistoryBackend{chunks: []string{"user_id;segment;operation;datetime\n"}})
	gets := 0
	for _, r := range protoRoutes(t) {
		if r.method != http.MethodGet {
			continue
		}
		gets++
		base := h.url
		if r.service == "HistoryService" {
			base = history.url
		}
		headLike(t, base, r.path+"?userID="+userID+"&slug=A&month=8&year=2023")
		headLike(t, base, r.path+"/?userID="+userID+"&slug=A&month=8&year=2023")
	}
	if gets < 8 {
		t.Fatalf("only %d GET routes in the protos", gets)
	}
	for _, p := range []string{"/healthz", "/swagger/index.html", "/swagger/doc.json", "/swagger/index.css", "/swagger/swagger-initializer.js",
		"/segments/get-for-user?userID=a&userID=b", "/segments/nope"} {
		headLike(t, h.url, p)
	}
	// A HEAD answer that says 200 says it for what GET answers.
	if r := do(t, http.MethodHead, h.url+"/segments/get-for-user?userID="+userID, nil); r.status != http.StatusOK ||
		r.header.Get("Content-Type") != "application/json" || r.header.Get("Content-Length") != strconv.Itoa(len(`{"segments":["A","B"]}`)) {
		t.Fatalf("HEAD get-for-user: %d %v", r.status, r.header)
	}
}

// HEAD on a streamed read ends the upstream stream once the headers are
// out, instead of reading every member for nothing.
func TestHeadEndsAStreamEarly(t *testing.T) {
	h := newHarness(t, Options{LongUpstreamTimeout: time.Minute})
	ended := make(chan struct{})
	h.backend.set(func(f *fakeBackend) {
		f.batches = []*segmentationv1.StreamSegmentMembersResponse{members(userID)}
		f.holdStream = true
		f.streamEnded = ended
	})
	start := time.Now()
	r := do(t, http.MethodHead, h.url+"/segments/stream-members?slug=A", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-ndjson" || len(r.body) != 0 {
		t.Fatalf("HEAD stream-members: %d %v %q", r.status, r.header, r.body)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream stream still runs 10 s after the HEAD answer")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("HEAD took %v", took)
	}
}

// Every 405 names the methods of its path in Allow, HEAD with GET.
func TestMethodNotAllowedCarriesAllow(t *testing.T) {
	h := newHarness(t, Options{})
	history := newHistoryHarness(t, Options{}, &fakeHistoryBackend{})
	want := map[string][]string{"/healthz": {"GET"}}
	base := map[string]string{}
	for _, r := range protoRoutes(t) {
		want[r.path] = append(want[r.path], r.method)
		base[r.path] = h.url
		if r.service == "HistoryService" {
			base[r.path] = history.url
		}
	}
	base["/healthz"] = h.url
	for path, methods := range want {
		if slices.Contains(methods, http.MethodGet) {
			methods = append(methods, http.MethodHead)
		}
		slices.Sort(methods)
		allow := strings.Join(methods, ", ")
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, "PROPFIND"} {
			if slices.Contains(methods, m) {
				continue
			}
			r := do(t, m, base[path]+path, strings.NewReader(`{}`))
			oneOfType(t, envelope(t, r, http.StatusMethodNotAllowed), "method_not_allowed")
			if got := r.header.Get("Allow"); got != allow {
				t.Errorf("%s %s: Allow %q, want %q", m, path, got, allow)
			}
		}
	}
	for _, p := range []string{"/swagger/doc.json", "/swagger/index.html", "/swagger/"} {
		r := h.do(t, http.MethodPost, p, `{}`)
		oneOfType(t, envelope(t, r, http.StatusMethodNotAllowed), "method_not_allowed")
		if got := r.header.Get("Allow"); got != "GET, HEAD" {
			t.Errorf("POST %s: Allow %q, want \"GET, HEAD\"", p, got)
		}
	}
	if got := h.backend.take(); len(got) != 0 {
		t.Fatalf("a wrong method reached the upstream: %v", got)
	}
}

// The upstream's gRPC metadata (the fake sends some with every call) never
// reaches the client, as headers or as trailers, on any kind of answer.
func TestNoGRPCMetadataReachesTheClient(t *testing.T) {
	h := newHarness(t, Options{})
	h.backend.set(func(f *fakeBackend) {
		f.batches = []*segmentationv1.StreamSegmentMembersResponse{members(userID)}
	})
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/segments/get-for-user?userID=" + userID, ""},
		{http.MethodPost, "/segments/create", `{"slug":"A"}`},
		{http.MethodGet, "/segments/stream-members?slug=A", ""},
		{http.MethodGet, "/healthz", ""},
	} {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req, err := http.NewRequest(c.method, h.url+c.path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("TE", "trailers")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, resp.StatusCode, raw)
		}
		for _, fields := range []http.Header{resp.Header, resp.Trailer} {
			for name, values := range fields {
				lower := strings.ToLower(name + ": " + strings.Join(values, ","))
				if strings.HasPrefix(lower, "grpc-") || strings.Contains(lower, "secret") || strings.Contains(lower, upstreamMetadata) ||
					strings.EqualFold(name, "Trailer") {
					t.Errorf("%s %s: the client got %s: %v", c.method, c.path, name, values)
				}
			}
		}
	}
	h.backend.take()
}

// Absent values are left out rather than written as null (a permanent
// member has no expiresAt); zero numbers, empty strings and empty lists
// are still written.
func TestAbsentValuesAreLeftOut(t *testing.T) {
	h := newHarness(t, Options{})
	h.backend.set(func(f *fakeBackend) {
		f.batches = []*segmentationv1.StreamSegmentMembersResponse{members("1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c")}
	})
	for _, c := range []struct{ path, want string }{
		{"/segments/list-members?slug=A",
			`{"members":[{"userID":"` + userID + `","addedAt":"2023-08-29T10:13:42.123456Z","automatic":true}],"nextPageToken":"next"}`},
		{"/segments/stream-members?slug=A",
			`{"result":{"members":[{"userID":"1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c","addedAt":"2023-08-29T10:13:42.123456Z","automatic":true}]}}` + "\n"},
		{"/segments/get-segment?slug=A",
			`{"segment":{"slug":"A","percentToFill":0,"description":"","includeSegments":[],"excludeSegments":[]},"memberCount":"3"}`},
		{"/segments/get-for-user?userID=" + userID, `{"segments":[]}`},
		{"/segments/list", `{"segments":[],"nextPageToken":""}`},
	} {
		r := h.do(t, http.MethodGet, c.path, "")
		if r.status != http.StatusOK || string(r.body) != c.want {
			t.Errorf("GET %s: %d\n%s\nwant\n%s", c.path, r.status, r.body, c.want)
		}
	}
	h.backend.take()
}

// Every file Swagger UI's page loads from /swagger/ is served.
func TestSwaggerUILoadsEveryAsset(t *testing.T) {
	h := newHarness(t, Options{})
	page := h.do(t, http.MethodGet, "/swagger/index.html", "")
	refs := regexp.MustCompile(`(?:href|src)="([^"]+)"`).FindAllStringSubmatch(string(page.body), -1)
	if len(refs) < 5 {
		t.Fatalf("index.html references only %d files", len(refs))
	}
	for _, ref := range refs {
		name := strings.TrimPrefix(ref[1], "./")
		if strings.Contains(name, ":") || strings.HasPrefix(name, "/") {
			continue // another site, or data:
		}
		r := h.do(t, http.MethodGet, "/swagger/"+name, "")
		if r.status != http.StatusOK || len(r.body) == 0 {
			t.Errorf("index.html loads %s: status %d", ref[1], r.status)
		}
	}
	if r := h.do(t, http.MethodGet, "/swagger/index.css", ""); !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") {
		t.Errorf("index.css: Content-Type %q", r.header.Get("Content-Type"))
	}
}
