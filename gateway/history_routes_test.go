package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
	"segments/gateway/internal/testutil"
)

// fakeHistoryBackend is a HistoryService that records requests with their
// x-forwarded-host and answers with canned data.
type fakeHistoryBackend struct {
	segmentationv1.UnimplementedHistoryServiceServer

	mu         sync.Mutex
	requests   []proto.Message
	hosts      [][]string
	requestIDs [][]string // each call's x-request-id metadata
	err        error
	// chunks of DownloadHistoryReport, with pause before each but the first
	chunks []string
	pause  time.Duration
	block  bool // DownloadHistoryReport waits for its context to end
}

func (f *fakeHistoryBackend) record(ctx context.Context, req proto.Message) error {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, proto.Clone(req))
	f.hosts = append(f.hosts, md.Get("x-forwarded-host"))
	f.requestIDs = append(f.requestIDs, md.Get("x-request-id"))
	return f.err
}

func (f *fakeHistoryBackend) take() ([]proto.Message, [][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reqs, hosts := f.requests, f.hosts
	f.requests, f.hosts = nil, nil
	return reqs, hosts
}

func (f *fakeHistoryBackend) GetHistoryReportLink(ctx context.Context, req *segmentationv1.GetHistoryReportLinkRequest) (*segmentationv1.GetHistoryReportLinkResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.GetHistoryReportLinkResponse{
		ReportLink:     "http://reports.example.com/segments/history-report?year=2023&month=8&expires=1693540800&key=k&signature=s",
		ExpirationTime: timestamppb.New(time.Date(2023, 9, 1, 4, 0, 0, 0, time.UTC)),
	}, nil
}

func (f *fakeHistoryBackend) ListUserHistory(ctx context.Context, req *segmentationv1.ListUserHistoryRequest) (*segmentationv1.ListUserHistoryResponse, error) {
	if err := f.record(ctx, req); err != nil {
		return nil, err
	}
	return &segmentationv1.ListUserHistoryResponse{
		Events: []*segmentationv1.HistoryEvent{
			{UserId: userID, Segment: "AVITO_DISCOUNT_30", Operation: "remove", Reason: "ttl", Actor: "system",
				At: timestamppb.New(time.Date(2023, 8, 29, 10, 18, 42, 123456000, time.UTC))},
			{UserId: userID, Segment: "AVITO_DISCOUNT_30", Operation: "add", Reason: "manual", Actor: "alice",
				At: timestamppb.New(time.Date(2023, 8, 29, 10, 13, 42, 123456000, time.UTC))},
		},
		NextPageToken: "aDE6MTY5MzMwNDAyMjEyMzQ1Njo3",
	}, nil
}

func (f *fakeHistoryBackend) DownloadHistoryReport(req *segmentationv1.DownloadHistoryReportRequest, stream grpc.ServerStreamingServer[segmentationv1.DownloadHistoryReportResponse]) error {
	if err := f.record(stream.Context(), req); err != nil {
		return err
	}
	f.mu.Lock()
	chunks, pause, block := f.chunks, f.pause, f.block
	f.mu.Unlock()
	if block {
		<-stream.Context().Done()
		return status.FromContextError(stream.Context().Err()).Err()
	}
	for i, c := range chunks {
		msg := &segmentationv1.DownloadHistoryReportResponse{Data: []byte(c)}
		if i == 0 {
			msg.ContentType, msg.FileName = "text/csv; charset=utf-8", "segments-history-2023-08.csv"
		} else {
			select {
			case <-time.After(pause):
			case <-stream.Context().Done():
				return status.FromContextError(stream.Context().Err()).Err()
			}
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

type historyHarness struct {
	backend *fakeHistoryBackend
	url     string
}

// newHistoryHarness is the whole gateway handler over a fake HistoryService
// on bufconn.
func newHistoryHarness(t *testing.T, opts Options, backend *fakeHistoryBackend) *historyHarness {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	segmentationv1.RegisterHistoryServiceServer(srv, backend)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	opts.Upstream = "bufnet"
	opts.Logger = slog.New(slog.NewJSONHandler(&testutil.SyncBuffer{}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	handler, err := NewHandler(ctx, conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(handler)
	t.Cleanup(hs.Close)
	return &historyHarness{backend: backend, url: hs.URL}
}

// The history reads are reads: 200 with their JSON, the query mapped onto
// the request, and the Host passed on (the server builds the link with it).
func TestHistoryReadsAnswer200JSON(t *testing.T) {
	h := newHistoryHarness(t, Options{}, &fakeHistoryBackend{})
	httpHost := strings.TrimPrefix(h.url, "http://")

	r := do(t, http.MethodGet, h.url+"/segments/get-history-report-link?userID="+userID+"&month=8&year=2023", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("get-history-report-link: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	if want := `{"reportLink":"http://reports.example.com/segments/history-report?year=2023&month=8&expires=1693540800&key=k&signature=s",` +
		`"expirationTime":"2023-09-01T04:00:00Z"}`; string(r.body) != want {
		t.Fatalf("body %s, want %s", r.body, want)
	}
	reqs, hosts := h.backend.take()
	sameRequests(t, reqs, &segmentationv1.GetHistoryReportLinkRequest{UserId: userID, Month: 8, Year: 2023})
	if len(hosts[0]) != 1 || hosts[0][0] != httpHost {
		t.Fatalf("x-forwarded-host = %q, want [%s]", hosts[0], httpHost)
	}

	r = do(t, http.MethodGet, h.url+"/segments/get-user-history?userID="+userID+"&segment=AVITO_DISCOUNT_30"+
		"&from=2023-08-01T00:00:00Z&to=2023-09-01T00:00:00.5Z&pageSize=2&pageToken=aDE6", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("get-user-history: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	if want := `{"events":[` +
		`{"userID":"` + userID + `","segment":"AVITO_DISCOUNT_30","operation":"remove","reason":"ttl","at":"2023-08-29T10:18:42.123456Z","actor":"system"},` +
		`{"userID":"` + userID + `","segment":"AVITO_DISCOUNT_30","operation":"add","reason":"manual","at":"2023-08-29T10:13:42.123456Z","actor":"alice"}],` +
		`"nextPageToken":"aDE6MTY5MzMwNDAyMjEyMzQ1Njo3"}`; string(r.body) != want {
		t.Fatalf("body %s, want %s", r.body, want)
	}
	reqs, _ = h.backend.take()
	sameRequests(t, reqs, &segmentationv1.ListUserHistoryRequest{
		UserId: userID, Segment: "AVITO_DISCOUNT_30",
		From:     timestamppb.New(time.Date(2023, 8, 1, 0, 0, 0, 0, time.UTC)),
		To:       timestamppb.New(time.Date(2023, 9, 1, 0, 0, 0, 500_000_000, time.UTC)),
		PageSize: 2, PageToken: "aDE6",
	})

	// Upstream validation errors are the envelope, one entry per field.
	st, err := status.New(codes.InvalidArgument, "invalid").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "month", Description: "must be 1..12"}, {Field: "year", Description: "must be 1970..9999"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.backend.mu.Lock()
	h.backend.err = st.Err()
	h.backend.mu.Unlock()
	entries := envelope(t, do(t, http.MethodGet, h.url+"/segments/get-history-report-link?month=13&year=1969", nil), http.StatusBadRequest)
	if len(entries) != 2 || entries[0] != (entry{"validation_error", "month: must be 1..12"}) ||
		entries[1] != (entry{"validation_error", "year: must be 1970..9999"}) {
		t.Fatalf("entries %q", entries)
	}
	// A query value that is not a number never reaches the upstream.
	h.backend.take()
	oneOfType(t, envelope(t, do(t, http.MethodGet, h.url+"/segments/get-history-report-link?month=aug&year=2023", nil), http.StatusBadRequest), "parse_error")
	oneOfType(t, envelope(t, do(t, http.MethodGet, h.url+"/segments/get-user-history?userID="+userID+"&pageSize=ten", nil), http.StatusBadRequest), "parse_error")
	if reqs, _ := h.backend.take(); len(reqs) != 0 {
		t.Fatalf("unparsable queries reached the upstream: %v", reqs)
	}
}

// The report path is served by the streaming handler (raw CSV bytes as an
// attachment, not grpc-gateway's JSON stream), and the API's upstream
// timeout does not cut a long download: ReportTimeout bounds it instead.
func TestReportRouteStreamsCSVBeyondTheUpstreamTimeout(t *testing.T) {
	backend := &fakeHistoryBackend{
		chunks: []string{"user_id;segment;operation;datetime\n", userID + ";A;add;2023-08-29T10:13:42.123456Z\n"},
		pause:  600 * time.Millisecond,
	}
	h := newHistoryHarness(t, Options{UpstreamTimeout: 200 * time.Millisecond, ReportTimeout: 10 * time.Second}, backend)
	r := do(t, http.MethodGet, h.url+"/segments/history-report?year=2023&month=8&expires=1693540800&key=k&signature=s", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %q", r.status, r.body)
	}
	if want := strings.Join(backend.chunks, ""); string(r.body) != want {
		t.Fatalf("body %q, want %q", r.body, want)
	}
	if r.header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		r.header.Get("Content-Disposition") != "attachment; filename=segments-history-2023-08.csv" {
		t.Fatalf("headers %v", r.header)
	}
	reqs, hosts := backend.take()
	sameRequests(t, reqs, &segmentationv1.DownloadHistoryReportRequest{Year: 2023, Month: 8, Expires: 1693540800, Key: "k", Signature: "s"})
	if len(hosts[0]) != 1 || hosts[0][0] != strings.TrimPrefix(h.url, "http://") {
		t.Fatalf("x-forwarded-host = %q", hosts[0])
	}
	// Wrong methods get the envelope from the report handler.
	r = do(t, http.MethodPost, h.url+"/segments/history-report", nil)
	oneOfType(t, envelope(t, r, http.StatusMethodNotAllowed), "method_not_allowed")

	// ReportTimeout shorter than the stream: 503 before the first chunk.
	slow := newHistoryHarness(t, Options{UpstreamTimeout: 10 * time.Second, ReportTimeout: 200 * time.Millisecond},
		&fakeHistoryBackend{block: true})
	start := time.Now()
	oneOfType(t, envelope(t, do(t, http.MethodGet, slow.url+"/segments/history-report?year=2023&month=8", nil), http.StatusServiceUnavailable), "unavailable")
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the report timeout of 200ms answered after %v", took)
	}
}
