package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
)

// ---- the fake upstream's answers to the RPCs added after the contract's
// first seven routes

func (f *fakeBackend) GetSegment(ctx context.Context, req *segmentationv1.GetSegmentRequest) (*segmentationv1.GetSegmentResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.GetSegmentResponse{Segment: &segmentationv1.Segment{Slug: req.GetSlug()}, MemberCount: 3}, nil
}

func (f *fakeBackend) UpdateSegmentPercent(ctx context.Context, req *segmentationv1.UpdateSegmentPercentRequest) (*segmentationv1.UpdateSegmentPercentResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.UpdateSegmentPercentResponse{MembersAdded: 5}, nil
}

func (f *fakeBackend) ListSegments(ctx context.Context, req *segmentationv1.ListSegmentsRequest) (*segmentationv1.ListSegmentsResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.segmentPage != nil {
		return f.segmentPage, nil
	}
	return &segmentationv1.ListSegmentsResponse{}, nil
}

var memberAddedAt = time.Date(2023, 8, 29, 10, 13, 42, 123456000, time.UTC)

func (f *fakeBackend) ListSegmentMembers(ctx context.Context, req *segmentationv1.ListSegmentMembersRequest) (*segmentationv1.ListSegmentMembersResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.ListSegmentMembersResponse{
		Members:       []*segmentationv1.SegmentMember{{UserId: userID, AddedAt: timestamppb.New(memberAddedAt), Automatic: true}},
		NextPageToken: "next",
	}, nil
}

func (f *fakeBackend) StreamSegmentMembers(req *segmentationv1.StreamSegmentMembersRequest, stream grpc.ServerStreamingServer[segmentationv1.StreamSegmentMembersResponse]) error {
	if err := f.record(stream.Context(), req); err != nil {
		return err
	}
	f.mu.Lock()
	batches, streamErr, hold, ended := f.batches, f.streamErr, f.holdStream, f.streamEnded
	f.mu.Unlock()
	if ended != nil {
		defer close(ended)
	}
	for _, b := range batches {
		if err := stream.Send(b); err != nil {
			return err
		}
	}
	if hold {
		<-stream.Context().Done()
		return status.FromContextError(stream.Context().Err()).Err()
	}
	return streamErr
}

func (f *fakeBackend) AddSegmentToUsers(ctx context.Context, req *segmentationv1.AddSegmentToUsersRequest) (*segmentationv1.AddSegmentToUsersResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.AddSegmentToUsersResponse{Added: int64(len(req.GetUserIds()))}, nil
}

func (f *fakeBackend) RemoveSegmentFromUsers(ctx context.Context, req *segmentationv1.RemoveSegmentFromUsersRequest) (*segmentationv1.RemoveSegmentFromUsersResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.RemoveSegmentFromUsersResponse{Removed: int64(len(req.GetUserIds()))}, nil
}

// ---- routes as the protos define them

// protoRoute is one REST route of an RPC.
type protoRoute struct {
	route
	service, protoMethod string // short names: SegmentService, GetSegment
}

// protoRoutes lists every REST route of every service in package
// segmentation.v1, sorted.
func protoRoutes(t *testing.T) []protoRoute {
	t.Helper()
	var out []protoRoute
	protoregistry.GlobalFiles.RangeFilesByPackage("segmentation.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			svc := fd.Services().Get(i)
			for j := 0; j < svc.Methods().Len(); j++ {
				m := svc.Methods().Get(j)
				for _, r := range httpRoutes(m) {
					out = append(out, protoRoute{r, string(svc.Name()), string(m.Name())})
				}
			}
		}
		return true
	})
	if len(out) < 17 {
		t.Fatalf("found only %d routes in the protos: %v", len(out), out)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

// Exactly the calls that work on whole sets of users, or stream a whole
// segment, get the long timeout.
func TestLongRoutes(t *testing.T) {
	want := map[route]bool{
		{http.MethodPost, "/segments/create"}:           true,
		{http.MethodDelete, "/segments/remove"}:         true,
		{http.MethodPut, "/segments/update-percent"}:    true,
		{http.MethodPost, "/segments/bulk-add"}:         true,
		{http.MethodPost, "/segments/bulk-remove"}:      true,
		{http.MethodGet, "/segments/stream-members"}:    true,
		{http.MethodGet, "/segments/stream-members-at"}: true,
	}
	if fmt.Sprint(longRoutes) != fmt.Sprint(want) {
		t.Fatalf("long routes %v, want %v", longRoutes, want)
	}
	opts := &Options{UpstreamTimeout: time.Second, LongUpstreamTimeout: time.Hour}
	for _, r := range protoRoutes(t) {
		wantTimeout := time.Second
		if want[r.route] {
			wantTimeout = time.Hour
		}
		if got := upstreamTimeout(opts, r.method, r.path); got != wantTimeout {
			t.Errorf("%s %s (%s.%s): timeout %v, want %v", r.method, r.path, r.service, r.protoMethod, got, wantTimeout)
		}
	}
	// The same path with another method is another route.
	if got := upstreamTimeout(opts, http.MethodGet, "/segments/bulk-add"); got != time.Second {
		t.Errorf("GET /segments/bulk-add: %v", got)
	}
}

// Through the assembled handler: every route of SegmentService and
// UserAdminService answers 200 (reads) or 204 (mutations), and its upstream
// call carries the deadline of its route.
func TestEveryRouteGetsTheDeadlineAndStatusOfItsKind(t *testing.T) {
	const short, long = 5 * time.Second, time.Hour
	h := newHarness(t, Options{UpstreamTimeout: short, LongUpstreamTimeout: long})
	seen := 0
	for _, r := range protoRoutes(t) {
		if r.service == "HistoryService" {
			continue // its own harness and tests
		}
		seen++
		body := ""
		if r.method != http.MethodGet {
			body = `{}`
		}
		resp := h.do(t, r.method, r.path, body)
		if isRead(r.protoMethod) {
			if resp.status != http.StatusOK {
				t.Errorf("%s %s: status %d, want 200 (a read); body %q", r.method, r.path, resp.status, resp.body)
			}
		} else {
			noContent(t, resp)
		}
		if got := h.backend.take(); len(got) != 1 {
			t.Fatalf("%s %s: upstream got %v", r.method, r.path, got)
		}
		h.backend.mu.Lock()
		left := h.backend.deadlines[len(h.backend.deadlines)-1]
		h.backend.mu.Unlock()
		lo, hi := time.Duration(0), short
		if longRoutes[r.route] {
			lo, hi = long-time.Minute, long
		}
		if left <= lo || left > hi {
			t.Errorf("%s %s: the upstream call had %v left, want (%v, %v]", r.method, r.path, left, lo, hi)
		}
	}
	if seen < 14 {
		t.Fatalf("only %d routes checked", seen)
	}
}

// A long route outlives UpstreamTimeout; any other route does not.
func TestLongRoutesOutliveTheUpstreamTimeout(t *testing.T) {
	h := newHarness(t, Options{UpstreamTimeout: 200 * time.Millisecond, LongUpstreamTimeout: 10 * time.Second})
	h.backend.set(func(f *fakeBackend) {
		f.delay = 700 * time.Millisecond
		f.batches = []*segmentationv1.StreamSegmentMembersResponse{{}}
	})
	noContent(t, h.do(t, http.MethodPost, "/segments/bulk-add", `{"slug":"A","userIDs":["`+userID+`"]}`))
	noContent(t, h.do(t, http.MethodPut, "/segments/update-percent", `{"slug":"A","percentToFill":30}`))
	if r := h.do(t, http.MethodGet, "/segments/stream-members?slug=A", ""); r.status != http.StatusOK {
		t.Fatalf("stream-members: %d %q", r.status, r.body)
	}
	oneOfType(t, envelope(t, h.do(t, http.MethodGet, "/segments/list-members?slug=A", ""), http.StatusServiceUnavailable), "unavailable")
	oneOfType(t, envelope(t, h.do(t, http.MethodPost, "/segments/change-for-user", `{"userID":"`+userID+`"}`), http.StatusServiceUnavailable), "unavailable")
}

func TestDefaults(t *testing.T) {
	o := Options{Upstream: "x"}
	if err := o.applyDefaults(); err != nil {
		t.Fatal(err)
	}
	if o.UpstreamTimeout != 10*time.Second || o.LongUpstreamTimeout != 10*time.Minute || o.MaxBodyBytes != 8<<20 {
		t.Fatalf("defaults: upstream %v, long %v, body %d", o.UpstreamTimeout, o.LongUpstreamTimeout, o.MaxBodyBytes)
	}
}

// The OpenAPI document (generated from the protos with openapi.yaml) has
// every route of the protos and no other, each with the success status the
// gateway answers: 200 for reads, 204 for mutations. A new RPC needs its
// entry in openapi.yaml.
func TestSwaggerDocMatchesTheProtos(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.do(t, http.MethodGet, "/swagger/doc.json", "")
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string                     `json:"operationId"`
			Responses   map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("doc.json: %v", err)
	}
	documented := map[route]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[route{strings.ToUpper(method), path}] = true
		}
	}
	for _, pr := range protoRoutes(t) {
		op, ok := doc.Paths[pr.path][strings.ToLower(pr.method)]
		if !ok {
			t.Errorf("doc.json lacks %s %s (%s.%s)", pr.method, pr.path, pr.service, pr.protoMethod)
			continue
		}
		delete(documented, pr.route)
		if want := pr.service + "_" + pr.protoMethod; op.OperationID != want {
			t.Errorf("%s %s: operationId %q, want %q", pr.method, pr.path, op.OperationID, want)
		}
		var success []string
		for code := range op.Responses {
			if strings.HasPrefix(code, "2") {
				success = append(success, code)
			}
		}
		want := "204"
		if isRead(pr.protoMethod) {
			want = "200"
		}
		if len(success) != 1 || success[0] != want {
			t.Errorf("%s %s (%s): success responses %v, want exactly %s: add it to gateway/openapi.yaml",
				pr.method, pr.path, pr.protoMethod, success, want)
		}
	}
	if len(documented) != 0 {
		t.Errorf("doc.json has routes the protos do not: %v", documented)
	}
}

// ---- stream-members over REST

func members(ids ...string) *segmentationv1.StreamSegmentMembersResponse {
	out := &segmentationv1.StreamSegmentMembersResponse{}
	for _, id := range ids {
		out.Members = append(out.Members, &segmentationv1.SegmentMember{
			UserId: id, AddedAt: timestamppb.New(memberAddedAt), Automatic: id != userID,
		})
	}
	return out
}

// A read: 200, one {"result": batch} object per line, as the batches come.
func TestStreamMembersIsNewlineDelimitedJSON(t *testing.T) {
	h := newHarness(t, Options{})
	other := "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c"
	exp := timestamppb.New(memberAddedAt.Add(time.Hour))
	first := members(userID, other)
	first.Members[0].ExpiresAt = exp
	h.backend.set(func(f *fakeBackend) {
		f.batches = []*segmentationv1.StreamSegmentMembersResponse{first, members(other)}
	})
	r := h.do(t, http.MethodGet, "/segments/stream-members?slug=AVITO_DISCOUNT_30", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, Content-Type %q, body %q; want 200 application/x-ndjson", r.status, r.header.Get("Content-Type"), r.body)
	}
	want := `{"result":{"members":[` +
		`{"userID":"` + userID + `","addedAt":"2023-08-29T10:13:42.123456Z","expiresAt":"2023-08-29T11:13:42.123456Z","automatic":false},` +
		`{"userID":"` + other + `","addedAt":"2023-08-29T10:13:42.123456Z","automatic":true}]}}` + "\n" +
		`{"result":{"members":[{"userID":"` + other + `","addedAt":"2023-08-29T10:13:42.123456Z","automatic":true}]}}` + "\n"
	if string(r.body) != want {
		t.Fatalf("body\n%s\nwant\n%s", r.body, want)
	}
	sameRequests(t, h.backend.take(), &segmentationv1.StreamSegmentMembersRequest{Slug: "AVITO_DISCOUNT_30"})

	// Wrong query values never reach the upstream.
	oneOfType(t, envelope(t, h.do(t, http.MethodGet, "/segments/stream-members?slug=A&slug=B", ""), http.StatusBadRequest), "parse_error")
	if got := h.backend.take(); len(got) != 0 {
		t.Fatalf("a bad query reached the upstream: %v", got)
	}
}

// An error before the first batch is an ordinary error response: its status
// and the envelope. An error after it ends the body with a line holding
// the envelope, never the upstream's own words.
func TestStreamMembersErrorsAreEnvelopes(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		err        error
		wantStatus int
		wantType   string
		wantInfo   string
	}{
		{badRequest(t, codes.NotFound, "m", "slug"), 404, "not_found", "slug: problem with slug"},
		{badRequest(t, codes.InvalidArgument, "m", "slug"), 400, "validation_error", "slug: problem with slug"},
		{status.Error(codes.DeadlineExceeded, "deadline at 10.0.0.5:5432"), 503, "unavailable", "service unavailable; safe to retry"},
		{status.Error(codes.Internal, `ERROR: syntax error at "SELECT" (SQLSTATE 42601)`), 500, "internal_error", "internal error"},
	}
	for _, tc := range tests {
		h.backend.set(func(f *fakeBackend) { f.batches, f.streamErr = nil, tc.err })
		r := h.do(t, http.MethodGet, "/segments/stream-members?slug=A", "")
		e := oneOfType(t, envelope(t, r, tc.wantStatus), tc.wantType)
		if e.Info != tc.wantInfo {
			t.Errorf("%v: info %q, want %q", tc.err, e.Info, tc.wantInfo)
		}

		h.backend.set(func(f *fakeBackend) { f.batches = []*segmentationv1.StreamSegmentMembersResponse{members(userID)} })
		r = h.do(t, http.MethodGet, "/segments/stream-members?slug=A", "")
		lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n")
		if r.status != http.StatusOK || len(lines) != 2 || !strings.HasPrefix(lines[0], `{"result":`) {
			t.Fatalf("%v after a batch: %d %q", tc.err, r.status, r.body)
		}
		wantLine, _ := json.Marshal(map[string][]entry{"errors": {{tc.wantType, tc.wantInfo}}})
		if !strings.EqualFold(lines[1], string(wantLine)) {
			t.Errorf("%v after a batch: last line %s, want %s", tc.err, lines[1], wantLine)
		}
	}
	h.backend.take()
}

// ---- message sizes between the gateway and the server

// Run's connection sends a bulk call of 100,000 ids (the body fits the
// default limit) and receives answers over grpc-go's default 4 MB.
func TestRunCarriesLargeMessages(t *testing.T) {
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend, _ := startFakeUpstream(t, grpcLis)
	// The largest page: 1000 segments with 1000-character descriptions
	// and 20 + 20 filter slugs.
	var filters []string
	for i := 0; i < 20; i++ {
		filters = append(filters, fmt.Sprintf("%0128d", i))
	}
	page := &segmentationv1.ListSegmentsResponse{}
	for i := 0; i < 1000; i++ {
		page.Segments = append(page.Segments, &segmentationv1.Segment{
			Slug: fmt.Sprintf("S%04d", i), Description: strings.Repeat("d", 1000),
			IncludeSegments: filters, ExcludeSegments: filters,
		})
	}
	if size := proto.Size(page); size <= 4<<20 {
		t.Fatalf("the page is only %d bytes", size)
	}
	backend.set(func(f *fakeBackend) { f.segmentPage = page })

	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + httpLis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Listener: httpLis, Upstream: grpcLis.Addr().String(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ShutdownTimeout: 5 * time.Second})
	}()
	t.Cleanup(func() { cancel(); <-done })

	ids := make([]string, 100_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
	}
	body, _ := json.Marshal(map[string]any{"slug": "AVITO_DISCOUNT_30", "userIDs": ids})
	if len(body) < 3_900_000 || len(body) > DefaultMaxBodyBytes {
		t.Fatalf("body of %d bytes", len(body))
	}
	noContent(t, do(t, http.MethodPost, base+"/segments/bulk-add", strings.NewReader(string(body))))
	got := backend.take()
	if len(got) != 1 || len(got[0].(*segmentationv1.AddSegmentToUsersRequest).GetUserIds()) != len(ids) {
		t.Fatalf("the upstream did not get the 100,000 ids")
	}

	r := do(t, http.MethodGet, base+"/segments/list?pageSize=1000", nil)
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %.300q", r.status, r.body)
	}
	var list struct{ Segments []json.RawMessage }
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Segments) != 1000 {
		t.Fatalf("list: %d segments, %v", len(list.Segments), err)
	}
}
