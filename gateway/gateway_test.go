package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
	"segments/gateway/internal/testutil"
)

// fakeBackend implements both services: it records every request and
// answers with canned responses or a configured error.
type fakeBackend struct {
	segmentationv1.UnimplementedSegmentServiceServer
	segmentationv1.UnimplementedUserAdminServiceServer

	mu        sync.Mutex
	requests  []proto.Message
	err       error           // returned by every call when set
	segments  []string        // GetUserSegments answer
	block     bool            // wait for the call's context to end
	delay     time.Duration   // answer after this long (or the context's end)
	deadlines []time.Duration // time left on each call's deadline, -1 if none
	keys      [][]string      // each call's idempotency-key metadata

	// StreamSegmentMembers sends these batches, then ends with streamErr,
	// or with holdStream waits for the call's context to end first;
	// streamEnded is closed when it returns.
	batches     []*segmentationv1.StreamSegmentMembersResponse
	streamErr   error
	holdStream  bool
	streamEnded chan struct{}
	// ListSegments answer
	segmentPage *segmentationv1.ListSegmentsResponse
	// every call's method and x-request-id metadata, health checks too
	calls []upstreamCall
}

// upstreamCall is one call the fake upstream received.
type upstreamCall struct {
	method     string
	requestIDs []string
}

// keepCall records a call's method and x-request-id metadata.
func (f *fakeBackend) keepCall(ctx context.Context, method string) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, upstreamCall{method: method, requestIDs: md.Get("x-request-id")})
}

// takeCalls returns the calls received since the last takeCalls.
func (f *fakeBackend) takeCalls() []upstreamCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

// upstreamMetadata is what the fake sends back with every call, as header
// and trailer metadata: none of it may reach an HTTP client.
const upstreamMetadata = "x-upstream-only"

func (f *fakeBackend) record(ctx context.Context, req proto.Message) error {
	_ = grpc.SetHeader(ctx, metadata.Pairs(upstreamMetadata, "header-secret"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs(upstreamMetadata+"-trailer", "trailer-secret"))
	f.mu.Lock()
	f.requests = append(f.requests, proto.Clone(req))
	left := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	f.deadlines = append(f.deadlines, left)
	md, _ := metadata.FromIncomingContext(ctx)
	f.keys = append(f.keys, md.Get("idempotency-key"))
	block, delay, err := f.block, f.delay, f.err
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return err
}

func (f *fakeBackend) set(fn func(f *fakeBackend)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// take returns the requests recorded since the last take.
func (f *fakeBackend) take() []proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.requests
	f.requests = nil
	return out
}

func (f *fakeBackend) CreateSegment(ctx context.Context, req *segmentationv1.CreateSegmentRequest) (*segmentationv1.CreateSegmentResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.CreateSegmentResponse{Segment: &segmentationv1.Segment{
		Slug: req.GetSlug(), Description: "must not reach the client", CreatedAt: timestamppb.Now(),
	}}, nil
}

func (f *fakeBackend) DeleteSegment(ctx context.Context, req *segmentationv1.DeleteSegmentRequest) (*segmentationv1.DeleteSegmentResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.DeleteSegmentResponse{MembershipsEnded: 42}, nil
}

func (f *fakeBackend) UpdateUserSegments(ctx context.Context, req *segmentationv1.UpdateUserSegmentsRequest) (*segmentationv1.UpdateUserSegmentsResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.UpdateUserSegmentsResponse{}, nil
}

func (f *fakeBackend) GetUserSegments(ctx context.Context, req *segmentationv1.GetUserSegmentsRequest) (*segmentationv1.GetUserSegmentsResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &segmentationv1.GetUserSegmentsResponse{Segments: append([]string(nil), f.segments...)}, nil
}

func (f *fakeBackend) CreateUser(ctx context.Context, req *segmentationv1.CreateUserRequest) (*segmentationv1.CreateUserResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.CreateUserResponse{}, nil
}

func (f *fakeBackend) UpdateUser(ctx context.Context, req *segmentationv1.UpdateUserRequest) (*segmentationv1.UpdateUserResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.UpdateUserResponse{}, nil
}

func (f *fakeBackend) DeleteUser(ctx context.Context, req *segmentationv1.DeleteUserRequest) (*segmentationv1.DeleteUserResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.DeleteUserResponse{MembershipsEnded: 7}, nil
}

// harness is the gateway's handler over a fake upstream on bufconn, served
// by a real net/http server on loopback.
type harness struct {
	backend *fakeBackend
	health  *health.Server
	url     string
	logs    *testutil.SyncBuffer
}

func startFakeUpstream(t *testing.T, lis net.Listener) (*fakeBackend, *health.Server) {
	t.Helper()
	backend := &fakeBackend{}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			backend.keepCall(ctx, info.FullMethod)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			backend.keepCall(ss.Context(), info.FullMethod)
			return h(srv, ss)
		}))
	segmentationv1.RegisterSegmentServiceServer(srv, backend)
	segmentationv1.RegisterUserAdminServiceServer(srv, backend)
	hs := health.NewServer()
	hs.SetServingStatus("", grpc_health_v1.HealthCheckResponse_SERVING)
	grpc_health_v1.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return backend, hs
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	backend, hs := startFakeUpstream(t, lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	logs := &testutil.SyncBuffer{}
	if opts.Upstream == "" {
		opts.Upstream = "bufnet"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	handler, err := NewHandler(ctx, conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return &harness{backend: backend, health: hs, url: srv.URL, logs: logs}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, target string, body io.Reader) response {
	t.Helper()
	return doWith(t, method, target, body, nil)
}

// doWith is do with these headers too.
func doWith(t *testing.T, method, target string, body io.Reader, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	for name, values := range header {
		req.Header[name] = values
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, target, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

func (h *harness) do(t *testing.T, method, path, body string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return do(t, method, h.url+path, r)
}

type entry struct{ Type, Info string }

// envelope checks an error response: the status, Content-Type
// application/json and a body of exactly {"errors":[{"type","info"},...]}
// with a non-empty list; it returns the entries.
func envelope(t *testing.T, r response, wantStatus int) []entry {
	t.Helper()
	if r.status != wantStatus {
		t.Fatalf("status = %d, want %d; body %q", r.status, wantStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json; body %q", ct, r.body)
	}
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(r.body))
	if err := dec.Decode(&top); err != nil || dec.More() {
		t.Fatalf("error body is not one JSON object: %v; body %q", err, r.body)
	}
	if len(top) != 1 || top["errors"] == nil {
		t.Fatalf("error body must have exactly the key \"errors\": %q", r.body)
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(top["errors"], &list); err != nil || len(list) == 0 {
		t.Fatalf("\"errors\" is not a non-empty array of objects: %v; body %q", err, r.body)
	}
	out := make([]entry, 0, len(list))
	for i, item := range list {
		var e entry
		if len(item) != 2 || json.Unmarshal(item["type"], &e.Type) != nil || json.Unmarshal(item["info"], &e.Info) != nil ||
			e.Type == "" || e.Info == "" {
			t.Fatalf("errors[%d] must be exactly {\"type\": non-empty string, \"info\": non-empty string}: %q", i, r.body)
		}
		out = append(out, e)
	}
	return out
}

func oneOfType(t *testing.T, entries []entry, typ string) entry {
	t.Helper()
	if len(entries) != 1 || entries[0].Type != typ {
		t.Fatalf("entries = %q, want exactly one %q", entries, typ)
	}
	return entries[0]
}

// noContent checks a 204 with an empty body and no JSON content type.
func noContent(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusNoContent {
		t.Fatalf("status = %d, want 204; body %q", r.status, r.body)
	}
	if len(r.body) != 0 {
		t.Fatalf("204 with a body: %q", r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "" {
		t.Fatalf("204 with Content-Type %q", ct)
	}
	if cl := r.header.Get("Content-Length"); cl != "" && cl != "0" {
		t.Fatalf("204 with Content-Length %q", cl)
	}
}

func sameRequests(t *testing.T, got []proto.Message, want ...proto.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("upstream got %d requests %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("upstream request %d = %v, want %v", i, got[i], want[i])
		}
	}
}

const userID = "0b7f3c1e-5d2a-4c1b-9f3e-7a6b5c4d3e2f"

func TestMutationsAnswer204WithEmptyBody(t *testing.T) {
	h := newHarness(t, Options{})
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name, method, path, body string
		want                     proto.Message
	}{
		{"create", http.MethodPost, "/segments/create", `{"slug":"AVITO_VOICE_MESSAGES"}`,
			&segmentationv1.CreateSegmentRequest{Slug: "AVITO_VOICE_MESSAGES"}},
		{"create with percent and description", http.MethodPost, "/segments/create",
			`{"slug":"AVITO_DISCOUNT_30","percentToFill":12.5,"description":"d"}`,
			&segmentationv1.CreateSegmentRequest{Slug: "AVITO_DISCOUNT_30", PercentToFill: proto.Float64(12.5), Description: "d"}},
		{"remove", http.MethodDelete, "/segments/remove", `{"slug":"AVITO_VOICE_MESSAGES"}`,
			&segmentationv1.DeleteSegmentRequest{Slug: "AVITO_VOICE_MESSAGES"}},
		{"change-for-user", http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + userID + `","segmentsToAdd":[{"segmentSlug":"A"},{"segmentSlug":"B","secondsToBeInSegment":300},` +
				`{"segmentSlug":"C","deadlineForStayingInSegment":"2030-01-02T03:04:05Z"}],"segmentsToRemove":[{"segmentSlug":"D"}]}`,
			&segmentationv1.UpdateUserSegmentsRequest{
				UserId: userID,
				SegmentsToAdd: []*segmentationv1.UpdateUserSegmentsRequest_SegmentToAdd{
					{SegmentSlug: "A"},
					{SegmentSlug: "B", SecondsToBeInSegment: proto.Int64(300)},
					{SegmentSlug: "C", DeadlineForStayingInSegment: timestamppb.New(deadline)},
				},
				SegmentsToRemove: []*segmentationv1.UpdateUserSegmentsRequest_SegmentToRemove{{SegmentSlug: "D"}},
			}},
		{"create-user", http.MethodPost, "/segments/create-user", `{"userID":"` + userID + `"}`,
			&segmentationv1.CreateUserRequest{UserId: userID}},
		{"update-user", http.MethodPut, "/segments/update-user", `{"userID":"` + userID + `","status":"excluded"}`,
			&segmentationv1.UpdateUserRequest{UserId: userID, Status: "excluded"}},
		{"remove-user", http.MethodDelete, "/segments/remove-user", `{"userID":"` + userID + `"}`,
			&segmentationv1.DeleteUserRequest{UserId: userID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			noContent(t, h.do(t, tc.method, tc.path, tc.body))
			sameRequests(t, h.backend.take(), tc.want)
		})
	}
}

func TestUnknownJSONFieldsAreIgnored(t *testing.T) {
	h := newHarness(t, Options{})
	noContent(t, h.do(t, http.MethodPost, "/segments/create",
		`{"unknown":1,"slug":"A","nested":{"deep":[1,{"x":null}]},"alsoUnknown":"x"}`))
	sameRequests(t, h.backend.take(), &segmentationv1.CreateSegmentRequest{Slug: "A"})

	noContent(t, h.do(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+userID+`","segmentsToAdd":[{"segmentSlug":"A","colour":"red"}],"extra":true}`))
	sameRequests(t, h.backend.take(), &segmentationv1.UpdateUserSegmentsRequest{
		UserId:        userID,
		SegmentsToAdd: []*segmentationv1.UpdateUserSegmentsRequest_SegmentToAdd{{SegmentSlug: "A"}},
	})
}

// The original API used DELETE with a JSON body; the body must reach the
// server.
func TestDeleteWithJSONBodyReachesServer(t *testing.T) {
	h := newHarness(t, Options{})
	noContent(t, h.do(t, http.MethodDelete, "/segments/remove", `{"slug":"FROM_THE_BODY"}`))
	noContent(t, h.do(t, http.MethodDelete, "/segments/remove-user", `{"userID":"`+userID+`"}`))
	sameRequests(t, h.backend.take(),
		&segmentationv1.DeleteSegmentRequest{Slug: "FROM_THE_BODY"},
		&segmentationv1.DeleteUserRequest{UserId: userID})
}

func TestGetForUserAnswers200JSON(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		segments []string
		want     string
	}{
		{[]string{"AVITO_DISCOUNT_30", "AVITO_VOICE_MESSAGES"}, `{"segments":["AVITO_DISCOUNT_30","AVITO_VOICE_MESSAGES"]}`},
		{nil, `{"segments":[]}`},
	}
	for _, tc := range tests {
		h.backend.set(func(f *fakeBackend) { f.segments = tc.segments })
		r := h.do(t, http.MethodGet, "/segments/get-for-user?userID="+url.QueryEscape(userID), "")
		if r.status != http.StatusOK {
			t.Fatalf("status = %d, want 200; body %q", r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type = %q, want application/json", ct)
		}
		if string(r.body) != tc.want {
			t.Fatalf("body = %s, want %s", r.body, tc.want)
		}
		sameRequests(t, h.backend.take(), &segmentationv1.GetUserSegmentsRequest{UserId: userID})
	}
}

// The query parameter is the contract's `userID`; the proto name works too,
// and giving the field twice is a parse error, not a silent choice.
func TestGetForUserQueryMapping(t *testing.T) {
	h := newHarness(t, Options{})
	for _, q := range []string{"userID=" + userID, "user_id=" + userID, "userID=" + userID + "&unrelated=1"} {
		r := h.do(t, http.MethodGet, "/segments/get-for-user?"+q, "")
		if r.status != http.StatusOK {
			t.Fatalf("?%s: status %d; body %q", q, r.status, r.body)
		}
		sameRequests(t, h.backend.take(), &segmentationv1.GetUserSegmentsRequest{UserId: userID})
	}
	// No userID: the request still reaches the server, which decides.
	if r := h.do(t, http.MethodGet, "/segments/get-for-user", ""); r.status != http.StatusOK {
		t.Fatalf("no userID: status %d; body %q", r.status, r.body)
	}
	sameRequests(t, h.backend.take(), &segmentationv1.GetUserSegmentsRequest{})

	for _, q := range []string{"userID=a&userID=b", "userID=a&user_id=b", "userID=%zz"} {
		r := h.do(t, http.MethodGet, "/segments/get-for-user?"+q, "")
		oneOfType(t, envelope(t, r, http.StatusBadRequest), "parse_error")
		if got := h.backend.take(); len(got) != 0 {
			t.Fatalf("?%s reached the upstream: %v", q, got)
		}
	}
}

// A query value that is not UTF-8 cannot be put in a proto string: the
// client sent junk, so it is a 400 parse_error, never a 5xx.
func TestGetForUserQueryInvalidUTF8Is400(t *testing.T) {
	h := newHarness(t, Options{})
	for _, q := range []string{"userID=%FF", "userID=%C3%28", "userID=0b7f3c1e%ED%A0%80"} {
		r := h.do(t, http.MethodGet, "/segments/get-for-user?"+q, "")
		if r.status >= 500 {
			t.Errorf("?%s: status %d, want 400 parse_error; body %s", q, r.status, r.body)
			continue
		}
		oneOfType(t, envelope(t, r, http.StatusBadRequest), "parse_error")
	}
}

// Bodies the gateway cannot read are answered with parse_error by the
// gateway itself; the upstream never sees them.
func TestParseErrorsStayInTheGateway(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct{ method, path, body string }{
		{http.MethodPost, "/segments/create", `not json`},
		{http.MethodPost, "/segments/create", `{"slug":5}`},
		{http.MethodPost, "/segments/create", `{"slug":"A",}`},
		{http.MethodPost, "/segments/create", `{"slug":"A"`},
		{http.MethodPost, "/segments/create", `["slug"]`},
		{http.MethodPost, "/segments/create", `{"percentToFill":"lots"}`},
		{http.MethodPost, "/segments/create", "{\"slug\":\"\xff\xfe\"}"},
		{http.MethodPost, "/segments/change-for-user", `{"segmentsToAdd":"x"}`},
		{http.MethodPost, "/segments/change-for-user", `{"segmentsToAdd":[{"secondsToBeInSegment":"soon"}]}`},
		{http.MethodPost, "/segments/change-for-user", `{"segmentsToAdd":[{"secondsToBeInSegment":1.5}]}`},
		{http.MethodPost, "/segments/change-for-user", `{"segmentsToAdd":[{"deadlineForStayingInSegment":"tomorrow"}]}`},
		{http.MethodPut, "/segments/update-user", `{"userID":["x"]}`},
		{http.MethodDelete, "/segments/remove-user", `{"userID":{}}`},
		{http.MethodDelete, "/segments/remove", `"slug"`},
	}
	for _, tc := range tests {
		r := h.do(t, tc.method, tc.path, tc.body)
		e := oneOfType(t, envelope(t, r, http.StatusBadRequest), "parse_error")
		for _, internal := range []string{"proto", "(line ", "strconv"} {
			if strings.Contains(e.Info, internal) {
				t.Errorf("%s %q: info %q has protobuf-go's or strconv's words (%q)", tc.path, tc.body, e.Info, internal)
			}
		}
		if got := h.backend.take(); len(got) != 0 {
			t.Fatalf("%s %q reached the upstream: %v", tc.path, tc.body, got)
		}
	}
}

// An empty body is an empty request: the server reports the missing fields.
func TestEmptyBodyReachesServerAsEmptyRequest(t *testing.T) {
	h := newHarness(t, Options{})
	noContent(t, h.do(t, http.MethodPost, "/segments/create", ""))
	sameRequests(t, h.backend.take(), &segmentationv1.CreateSegmentRequest{})
}

func badRequest(t *testing.T, code codes.Code, msg string, fields ...string) error {
	t.Helper()
	br := &errdetails.BadRequest{}
	for _, f := range fields {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: f, Description: "problem with " + f,
		})
	}
	st, err := status.New(code, msg).WithDetails(br)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// Upstream statuses become the contract's envelope with one entry per
// field violation.
func TestUpstreamErrorsBecomeEnvelopes(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantType   string
		wantInfos  []string
	}{
		{"three unknown slugs", badRequest(t, codes.NotFound, "m", "segmentsToAdd[0].segmentSlug", "segmentsToAdd[1].segmentSlug", "segmentsToRemove[0].segmentSlug"),
			404, "not_found", []string{
				"segmentsToAdd[0].segmentSlug: problem with segmentsToAdd[0].segmentSlug",
				"segmentsToAdd[1].segmentSlug: problem with segmentsToAdd[1].segmentSlug",
				"segmentsToRemove[0].segmentSlug: problem with segmentsToRemove[0].segmentSlug",
			}},
		{"validation", badRequest(t, codes.InvalidArgument, "m", "userID", "segmentsToAdd[0].secondsToBeInSegment"),
			400, "validation_error", []string{
				"userID: problem with userID",
				"segmentsToAdd[0].secondsToBeInSegment: problem with segmentsToAdd[0].secondsToBeInSegment",
			}},
		{"not a member", badRequest(t, codes.FailedPrecondition, "m", "segmentsToRemove[0].segmentSlug"),
			400, "validation_error", []string{"segmentsToRemove[0].segmentSlug: problem with segmentsToRemove[0].segmentSlug"}},
		{"conflict", badRequest(t, codes.AlreadyExists, "m", "slug"), 409, "conflict", []string{"slug: problem with slug"}},
		{"aborted", status.Error(codes.Aborted, "serialization failure, retry"), 409, "conflict", nil},
		{"unauthenticated", status.Error(codes.Unauthenticated, "no token"), 401, "unauthenticated", []string{"no token"}},
		{"permission", status.Error(codes.PermissionDenied, "analysts may not"), 403, "permission_denied", []string{"analysts may not"}},
		{"unimplemented", badRequest(t, codes.Unimplemented, "m", "percentToFill"), 501, "not_implemented", []string{"percentToFill: problem with percentToFill"}},
		{"unavailable", status.Error(codes.Unavailable, "db at 10.0.0.5:5432 refused"), 503, "unavailable", nil},
		{"internal", status.Error(codes.Internal, `ERROR: syntax error at "SELECT" (SQLSTATE 42601)`), 500, "internal_error", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.backend.set(func(f *fakeBackend) { f.err = tc.err })
			r := h.do(t, http.MethodPost, "/segments/change-for-user", `{"userID":"`+userID+`"}`)
			entries := envelope(t, r, tc.wantStatus)
			h.backend.take()
			for _, e := range entries {
				if e.Type != tc.wantType {
					t.Fatalf("entries = %q, want every type %q", entries, tc.wantType)
				}
			}
			if tc.wantInfos != nil {
				if len(entries) != len(tc.wantInfos) {
					t.Fatalf("entries = %q, want %d", entries, len(tc.wantInfos))
				}
				for i, want := range tc.wantInfos {
					if entries[i].Info != want {
						t.Errorf("entries[%d].info = %q, want %q", i, entries[i].Info, want)
					}
				}
			}
			for _, secret := range []string{"10.0.0.5", "5432", "SQLSTATE", "SELECT"} {
				if bytes.Contains(r.body, []byte(secret)) {
					t.Errorf("body leaks %q: %s", secret, r.body)
				}
			}
		})
	}
	// The same mapping for reads.
	h.backend.set(func(f *fakeBackend) { f.err = badRequest(t, codes.InvalidArgument, "m", "userID") })
	e := oneOfType(t, envelope(t, h.do(t, http.MethodGet, "/segments/get-for-user?userID=nope", ""), 400), "validation_error")
	if e.Info != "userID: problem with userID" {
		t.Errorf("info = %q", e.Info)
	}
}

var contractRoutes = []struct{ method, path string }{
	{http.MethodPost, "/segments/create"},
	{http.MethodDelete, "/segments/remove"},
	{http.MethodPost, "/segments/change-for-user"},
	{http.MethodGet, "/segments/get-for-user"},
	{http.MethodPost, "/segments/create-user"},
	{http.MethodPut, "/segments/update-user"},
	{http.MethodDelete, "/segments/remove-user"},
	// Added with the contract's "more endpoints may be added".
	{http.MethodGet, "/segments/get-segment"},
	{http.MethodPut, "/segments/update-percent"},
	{http.MethodGet, "/segments/list"},
	{http.MethodGet, "/segments/list-members"},
	{http.MethodGet, "/segments/stream-members"},
	{http.MethodPost, "/segments/bulk-add"},
	{http.MethodPost, "/segments/bulk-remove"},
}

func TestWrongMethodIs405(t *testing.T) {
	h := newHarness(t, Options{})
	for _, route := range contractRoutes {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			if m == route.method {
				continue
			}
			r := h.do(t, m, route.path, `{}`)
			e := oneOfType(t, envelope(t, r, http.StatusMethodNotAllowed), "method_not_allowed")
			if !strings.Contains(e.Info, m) || !strings.Contains(e.Info, route.path) {
				t.Errorf("%s %s: info %q does not name the method and path", m, route.path, e.Info)
			}
		}
	}
	if got := h.backend.take(); len(got) != 0 {
		t.Fatalf("a wrong method reached the upstream: %v", got)
	}
}

func TestUnknownPathIs404Envelope(t *testing.T) {
	h := newHarness(t, Options{})
	for _, p := range []string{"/", "/segments", "/segments/", "/segments/nope", "/segments/create/extra", "/SEGMENTS/CREATE", "/healthz/x", "/favicon.ico"} {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			e := oneOfType(t, envelope(t, h.do(t, m, p, `{}`), http.StatusNotFound), "not_found")
			if !strings.Contains(e.Info, p) {
				t.Errorf("%s %s: info %q does not name the path", m, p, e.Info)
			}
		}
	}
}

// Paths under /swagger/ that do not exist are unknown paths like any other:
// 404 in the envelope, not net/http's plain-text page.
func TestUnknownSwaggerPathIs404Envelope(t *testing.T) {
	h := newHarness(t, Options{})
	oneOfType(t, envelope(t, h.do(t, http.MethodGet, "/swagger/no-such-file.js", ""), http.StatusNotFound), "not_found")
}

func TestBodyOverLimitIs413(t *testing.T) {
	const limit = 64
	h := newHarness(t, Options{MaxBodyBytes: limit})
	exact := `{"slug":"A"}` + strings.Repeat(" ", limit-len(`{"slug":"A"}`))
	noContent(t, h.do(t, http.MethodPost, "/segments/create", exact))
	sameRequests(t, h.backend.take(), &segmentationv1.CreateSegmentRequest{Slug: "A"})

	over := exact + " "
	oneOfType(t, envelope(t, h.do(t, http.MethodPost, "/segments/create", over), http.StatusRequestEntityTooLarge), "payload_too_large")
	big := `{"slug":"` + strings.Repeat("A", 10*limit) + `"}`
	oneOfType(t, envelope(t, h.do(t, http.MethodDelete, "/segments/remove", big), http.StatusRequestEntityTooLarge), "payload_too_large")
	if got := h.backend.take(); len(got) != 0 {
		t.Fatalf("a body over the limit reached the upstream: %v", got)
	}
}

func TestHealthz(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.do(t, http.MethodGet, "/healthz", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("SERVING: status %d, Content-Type %q, body %q; want 200 JSON", r.status, r.header.Get("Content-Type"), r.body)
	}
	var body struct{ Status string }
	if err := json.Unmarshal(r.body, &body); err != nil || body.Status != "SERVING" {
		t.Fatalf("SERVING: body %q", r.body)
	}

	h.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	oneOfType(t, envelope(t, h.do(t, http.MethodGet, "/healthz", ""), http.StatusServiceUnavailable), "unavailable")

	h.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_SERVING)
	if r := h.do(t, http.MethodGet, "/healthz", ""); r.status != http.StatusOK {
		t.Fatalf("SERVING again: status %d", r.status)
	}
	oneOfType(t, envelope(t, h.do(t, http.MethodPost, "/healthz", ""), http.StatusMethodNotAllowed), "method_not_allowed")
}

func TestSwaggerDocListsTheContractPaths(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.do(t, http.MethodGet, "/swagger/doc.json", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
	}
	var doc struct {
		Swagger string                                `json:"swagger"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("doc.json is not valid JSON: %v", err)
	}
	if doc.Swagger == "" {
		t.Errorf("doc.json has no swagger version")
	}
	for _, route := range contractRoutes {
		ops, ok := doc.Paths[route.path]
		if !ok {
			t.Errorf("doc.json lacks %s", route.path)
			continue
		}
		if _, ok := ops[strings.ToLower(route.method)]; !ok {
			t.Errorf("doc.json: %s has no %s operation (has %v)", route.path, route.method, ops)
		}
	}
}

func TestSwaggerUI(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.do(t, http.MethodGet, "/swagger/index.html", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("index.html: status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
	}
	if !bytes.Contains(bytes.ToLower(r.body), []byte("<html")) || !bytes.Contains(r.body, []byte("swagger-ui")) {
		t.Fatalf("index.html does not look like Swagger UI: %.200s", r.body)
	}
	init := h.do(t, http.MethodGet, "/swagger/swagger-initializer.js", "")
	if init.status != http.StatusOK || !bytes.Contains(init.body, []byte("/swagger/doc.json")) {
		t.Fatalf("swagger-initializer.js: status %d, does not point at /swagger/doc.json: %.200s", init.status, init.body)
	}
	// /swagger and /swagger/ lead to the page.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/swagger", "/swagger/"} {
		resp, err := client.Get(h.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 3 || !strings.HasSuffix(resp.Header.Get("Location"), "/swagger/index.html") {
			t.Errorf("%s: status %d, Location %q; want a redirect to /swagger/index.html", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// Every upstream call carries the gateway's deadline; a call that outlives
// it answers 503.
func TestUpstreamDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarness(t, Options{UpstreamTimeout: timeout})
	noContent(t, h.do(t, http.MethodPost, "/segments/create-user", `{"userID":"`+userID+`"}`))
	h.backend.mu.Lock()
	left := h.backend.deadlines[len(h.backend.deadlines)-1]
	h.backend.mu.Unlock()
	if left <= 0 || left > timeout {
		t.Fatalf("the upstream call had %v left on its deadline, want (0, %v]", left, timeout)
	}

	h.backend.set(func(f *fakeBackend) { f.block = true })
	start := time.Now()
	oneOfType(t, envelope(t, h.do(t, http.MethodGet, "/segments/get-for-user?userID="+userID, ""), http.StatusServiceUnavailable), "unavailable")
	if elapsed := time.Since(start); elapsed < timeout || elapsed > timeout+5*time.Second {
		t.Fatalf("answered after %v, want about %v", elapsed, timeout)
	}
}

// The access log of the assembled handler names method, path and status
// but not the query.
func TestHandlerAccessLog(t *testing.T) {
	h := newHarness(t, Options{})
	h.do(t, http.MethodGet, "/segments/get-for-user?userID="+userID, "")
	h.do(t, http.MethodPost, "/segments/create", `{"slug":"SECRET_SLUG_IN_BODY"}`)
	out := h.logs.String()
	if strings.Contains(out, userID) || strings.Contains(out, "SECRET_SLUG_IN_BODY") {
		t.Fatalf("access log leaks the query or the body: %s", out)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m["msg"] == "http" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("want 2 access log lines, got %d: %s", len(lines), out)
	}
	if lines[0]["method"] != "GET" || lines[0]["path"] != "/segments/get-for-user" || lines[0]["status"] != float64(200) {
		t.Errorf("first line = %v", lines[0])
	}
	if lines[1]["method"] != "POST" || lines[1]["path"] != "/segments/create" || lines[1]["status"] != float64(204) {
		t.Errorf("second line = %v", lines[1])
	}
}

// An upstream nobody listens on: every API call and /healthz answer 503 in
// the envelope, naming no address.
func TestUpstreamDownIs503(t *testing.T) {
	closed := closedAddr(t)
	conn, err := grpc.NewClient(closed, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	handler, err := NewHandler(context.Background(), conn, Options{
		Upstream: closed, UpstreamTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(closed)
	for _, route := range append(contractRoutes, struct{ method, path string }{http.MethodGet, "/healthz"}) {
		body := io.Reader(nil)
		if route.method != http.MethodGet {
			body = strings.NewReader(`{"slug":"A","userID":"` + userID + `","status":"active","segmentsToAdd":[{"segmentSlug":"A"}]}`)
		}
		r := do(t, route.method, srv.URL+route.path+"?userID="+userID, body)
		oneOfType(t, envelope(t, r, http.StatusServiceUnavailable), "unavailable")
		if bytes.Contains(r.body, []byte(port)) {
			t.Errorf("%s %s: body names the upstream's port: %s", route.method, route.path, r.body)
		}
	}
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// Run serves on the given listener over a real TCP upstream, and returns
// nil once the context is cancelled.
func TestRunServesOnListenerAndStops(t *testing.T) {
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend, _ := startFakeUpstream(t, grpcLis)
	backend.set(func(f *fakeBackend) { f.segments = []string{"A"} })

	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + httpLis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Listener: httpLis, Upstream: grpcLis.Addr().String(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ShutdownTimeout: 5 * time.Second,
		})
	}()

	// The listener is already bound, so the first request just waits for
	// Serve; poll /healthz until the upstream connection is ready.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := do(t, http.MethodGet, base+"/healthz", nil)
		if r.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz not 200 within 10 s: %d %s", r.status, r.body)
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	r := do(t, http.MethodGet, base+"/segments/get-for-user?userID="+userID, nil)
	if r.status != http.StatusOK || string(r.body) != `{"segments":["A"]}` {
		t.Fatalf("get-for-user: %d %s", r.status, r.body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of cancel")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("the gateway still answers after Run returned")
	}
}

func TestUpstreamIsRequired(t *testing.T) {
	if err := Run(context.Background(), Options{}); err == nil {
		t.Fatal("Run without Upstream succeeded")
	}
	if _, err := NewHandler(context.Background(), nil, Options{}); err == nil {
		t.Fatal("NewHandler without Upstream succeeded")
	}
}

// Run reports a listen address it cannot use.
func TestRunBadAddr(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = Run(ctx, Options{Addr: lis.Addr().String(), Upstream: "127.0.0.1:1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run on a taken address = %v, want a listen error", err)
	}
	if !strings.Contains(err.Error(), lis.Addr().String()) {
		t.Errorf("error %q does not name the address", err)
	}
}

// A body with anything but whitespace after its JSON value is not JSON
// (contract §3: "body is not JSON" → parse_error); the gateway must not
// act on its first value and drop the rest.
func TestTrailingDataAfterJSONIsParseError(t *testing.T) {
	h := newHarness(t, Options{})
	for _, body := range []string{`{"slug":"A"} garbage`, `{"slug":"A"}{"slug":"B"}`, `{"slug":"A"}]`, `{"slug":"A"},`} {
		r := h.do(t, http.MethodPost, "/segments/create", body)
		got := h.backend.take()
		if r.status != http.StatusBadRequest {
			t.Errorf("%q: status %d with upstream requests %v, want 400 parse_error", body, r.status, got)
			continue
		}
		oneOfType(t, envelope(t, r, http.StatusBadRequest), "parse_error")
		if len(got) != 0 {
			t.Errorf("%q reached the upstream: %v", body, got)
		}
	}
	// Trailing whitespace is fine.
	noContent(t, h.do(t, http.MethodPost, "/segments/create", "{\"slug\":\"A\"}\n\t \r\n"))
}
