package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
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

	segmentationv1 "segments/gateway/gen/segmentation/v1"
	"segments/gateway/internal/testutil"
)

const csvType = "text/csv; charset=utf-8"

type downloadStream = grpc.ServerStreamingServer[segmentationv1.DownloadHistoryReportResponse]

// upstreamCall is what the fake upstream saw of one DownloadHistoryReport.
type upstreamCall struct {
	request       *segmentationv1.DownloadHistoryReportRequest
	forwardedHost []string
	deadlineLeft  time.Duration // -1: no deadline
}

// fakeHistory is a HistoryService whose DownloadHistoryReport runs the
// test's function and records every call.
type fakeHistory struct {
	segmentationv1.UnimplementedHistoryServiceServer

	mu       sync.Mutex
	calls    []upstreamCall
	download func(req *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error
}

func (f *fakeHistory) DownloadHistoryReport(req *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error {
	ctx := stream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	left := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	f.mu.Lock()
	f.calls = append(f.calls, upstreamCall{
		request:       proto.Clone(req).(*segmentationv1.DownloadHistoryReportRequest),
		forwardedHost: md.Get("x-forwarded-host"),
		deadlineLeft:  left,
	})
	download := f.download
	f.mu.Unlock()
	if download == nil {
		return status.Error(codes.Internal, "the test set no download function")
	}
	return download(req, stream)
}

func (f *fakeHistory) take() []upstreamCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

type harness struct {
	fake *fakeHistory
	url  string
	logs *testutil.SyncBuffer
}

// newHarness serves Handler over a fake upstream on bufconn, through a real
// net/http server on loopback (so an aborted handler really breaks the
// connection).
func newHarness(t *testing.T, timeout time.Duration, download func(*segmentationv1.DownloadHistoryReportRequest, downloadStream) error) *harness {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	fake := &fakeHistory{download: download}
	srv := grpc.NewServer()
	segmentationv1.RegisterHistoryServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	logs := &testutil.SyncBuffer{}
	handler := Handler(segmentationv1.NewHistoryServiceClient(conn), timeout, slog.New(slog.NewJSONHandler(logs, nil)))
	hs := httptest.NewServer(handler)
	t.Cleanup(hs.Close)
	return &harness{fake: fake, url: hs.URL, logs: logs}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (h *harness) do(t *testing.T, method, pathAndQuery string) response {
	t.Helper()
	req, err := http.NewRequest(method, h.url+pathAndQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, pathAndQuery, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, pathAndQuery, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

type entry struct {
	Type string `json:"type"`
	Info string `json:"info"`
}

// wantEnvelope checks the status, Content-Type application/json and a body
// of exactly {"errors":[{"type","info"},...]}, every entry of type typ; it
// returns the entries.
func wantEnvelope(t *testing.T, r response, code int, typ string) []entry {
	t.Helper()
	if r.status != code {
		t.Fatalf("status = %d, want %d; body %q", r.status, code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json; body %q", ct, r.body)
	}
	if cd := r.header.Get("Content-Disposition"); cd != "" {
		t.Fatalf("an error answer has Content-Disposition %q", cd)
	}
	var body struct {
		Errors []entry `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.More() || len(body.Errors) == 0 {
		t.Fatalf("body is not the envelope (%v): %q", err, r.body)
	}
	for _, e := range body.Errors {
		if e.Type != typ || e.Info == "" {
			t.Fatalf("entry %+v, want type %q with an info; body %q", e, typ, r.body)
		}
	}
	return body.Errors
}

// sendAll sends the chunks in order, contentType and fileName on the first.
func sendAll(stream downloadStream, fileName string, chunks ...string) error {
	for i, c := range chunks {
		msg := &segmentationv1.DownloadHistoryReportResponse{Data: []byte(c)}
		if i == 0 {
			msg.ContentType = csvType
			msg.FileName = fileName
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

const linkQuery = "?userID=0b7f3c1e-5d2a-4c1b-9f3e-7a6b5c4d3e2f&year=2023&month=8&expires=1693526400&key=k2024&signature=q9Zx-_AbC"

var reportChunks = []string{
	"user_id;segment;operation;datetime\n",
	"0b7f3c1e-5d2a-4c1b-9f3e-7a6b5c4d3e2f;AVITO_VOICE_MESSAGES;add;2023-08-29T10:13:42.123456Z\n" +
		"0b7f3c1e-5d2a-4c1b-9f3e-7a6b5c4d3e2f;AVITO_DISCOUNT_30;add;2023-08-29T10:13:42.123456Z\n",
	"", // an empty chunk in the middle adds nothing
	"0b7f3c1e-5d2a-4c1b-9f3e-7a6b5c4d3e2f;AVITO_DISCOUNT_30;remove;2023-08-30T00:00:00.000000Z\n",
}

func TestStreamsChunksInOrderWithHeaders(t *testing.T) {
	h := newHarness(t, time.Minute, func(_ *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error {
		return sendAll(stream, "segments-history-2023-08-0b7f3c1e-5d2a-4c1b-9f3e-7a6b5c4d3e2f.csv", reportChunks...)
	})
	r := h.do(t, http.MethodGet, Path+linkQuery)
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %q", r.status, r.body)
	}
	if want := strings.Join(reportChunks, ""); string(r.body) != want {
		t.Fatalf("body = %q, want the chunks concatenated in order %q", r.body, want)
	}
	wantHeaders := map[string]string{
		"Content-Type":           csvType,
		"Content-Disposition":    "attachment; filename=segments-history-2023-08-0b7f3c1e-5d2a-4c1b-9f3e-7a6b5c4d3e2f.csv",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	}
	for name, want := range wantHeaders {
		if got := r.header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want exactly %q", name, got, want)
		}
	}
	if calls := h.fake.take(); len(calls) != 1 {
		t.Fatalf("upstream called %d times, want once", len(calls))
	}
}

// The file name is quoted when it needs to be, so a client reads it back
// whole.
func TestFileNameIsQuotedWhenNeeded(t *testing.T) {
	h := newHarness(t, time.Minute, func(_ *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error {
		return sendAll(stream, "history (all users).csv", "user_id;segment;operation;datetime\n")
	})
	r := h.do(t, http.MethodGet, Path+linkQuery)
	if got, want := r.header.Get("Content-Disposition"), `attachment; filename="history (all users).csv"`; got != want {
		t.Fatalf("Content-Disposition = %q, want %q", got, want)
	}
}

// Every field of the link's query reaches the upstream request, and the
// request's Host reaches it as x-forwarded-host (the server builds links
// with it).
func TestQueryAndHostReachUpstream(t *testing.T) {
	h := newHarness(t, time.Minute, func(_ *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error {
		return sendAll(stream, "r.csv", "user_id;segment;operation;datetime\n")
	})
	req, err := http.NewRequest(http.MethodGet, h.url+Path+linkQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "reports.example.com:8443"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	calls := h.fake.take()
	if len(calls) != 1 {
		t.Fatalf("upstream called %d times, want once", len(calls))
	}
	want := &segmentationv1.DownloadHistoryReportRequest{
		UserId: "0b7f3c1e-5d2a-4c1b-9f3e-7a6b5c4d3e2f", Month: 8, Year: 2023,
		Expires: 1693526400, Key: "k2024", Signature: "q9Zx-_AbC",
	}
	if !proto.Equal(calls[0].request, want) {
		t.Fatalf("upstream request = %v, want %v", calls[0].request, want)
	}
	if got := calls[0].forwardedHost; len(got) != 1 || got[0] != "reports.example.com:8443" {
		t.Fatalf("x-forwarded-host = %q, want [reports.example.com:8443]", got)
	}
	if calls[0].deadlineLeft <= 0 || calls[0].deadlineLeft > time.Minute {
		t.Fatalf("upstream deadline in %v, want within the report timeout (1m)", calls[0].deadlineLeft)
	}

	// A link for every user has no userID; absent fields stay empty.
	h.do(t, http.MethodGet, Path+"?year=2023&month=8&expires=1693526400&key=k&signature=s")
	calls = h.fake.take()
	want = &segmentationv1.DownloadHistoryReportRequest{Month: 8, Year: 2023, Expires: 1693526400, Key: "k", Signature: "s"}
	if len(calls) != 1 || !proto.Equal(calls[0].request, want) {
		t.Fatalf("upstream requests = %v, want one %v", calls, want)
	}
}

// An error before the first chunk is still the contract's envelope, with
// the status of its gRPC code.
func TestErrorBeforeFirstChunkIsEnvelope(t *testing.T) {
	badRequest, err := status.New(codes.InvalidArgument, "invalid report").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "month", Description: "must be 1..12"},
			{Field: "year", Description: "must be 1970..9999"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		err   error
		code  int
		typ   string
		infos []string // nil: any single entry
	}{
		{"tampered link", status.Error(codes.NotFound, "report link is not valid: it was changed or its key was retired"),
			http.StatusNotFound, "not_found", []string{"report link is not valid: it was changed or its key was retired"}},
		{"expired link", status.Error(codes.NotFound, "report link expired at 2023-09-01T00:00:00Z; request a new one"),
			http.StatusNotFound, "not_found", []string{"report link expired at 2023-09-01T00:00:00Z; request a new one"}},
		{"database down", status.Error(codes.Unavailable, "connection to 10.1.2.3:5432 refused"),
			http.StatusServiceUnavailable, "unavailable", []string{"service unavailable; safe to retry"}},
		{"too many reports", status.Error(codes.Unavailable, "too many reports are being downloaded at once; retry later"),
			http.StatusServiceUnavailable, "unavailable", []string{"service unavailable; safe to retry"}},
		{"bad fields", badRequest.Err(), http.StatusBadRequest, "validation_error",
			[]string{"month: must be 1..12", "year: must be 1970..9999"}},
		{"internal", status.Error(codes.Internal, "SELECT broke at pg_store.cc:42"),
			http.StatusInternalServerError, "internal_error", []string{"internal error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, time.Minute, func(*segmentationv1.DownloadHistoryReportRequest, downloadStream) error {
				return tc.err
			})
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				r := h.do(t, method, Path+linkQuery)
				if method == http.MethodHead {
					if r.status != tc.code || len(r.body) != 0 || r.header.Get("Content-Disposition") != "" {
						t.Fatalf("HEAD: %d %q %v, want %d without a body or an attachment", r.status, r.body, r.header, tc.code)
					}
					continue
				}
				entries := wantEnvelope(t, r, tc.code, tc.typ)
				var infos []string
				for _, e := range entries {
					infos = append(infos, e.Info)
				}
				if fmt.Sprint(infos) != fmt.Sprint(tc.infos) {
					t.Fatalf("infos = %q, want %q", infos, tc.infos)
				}
			}
		})
	}
}

// A stream that ends without a single chunk breaks the protocol (the server
// always sends at least the header line): an error, never an empty 200.
func TestEmptyStreamIsNotAReport(t *testing.T) {
	h := newHarness(t, time.Minute, func(*segmentationv1.DownloadHistoryReportRequest, downloadStream) error {
		return nil
	})
	wantEnvelope(t, h.do(t, http.MethodGet, Path+linkQuery), http.StatusInternalServerError, "internal_error")
}

// A query value that is not a number is the client's mistake: 400
// parse_error, and the upstream is not asked.
func TestBadQueryNumbersAreParseErrors(t *testing.T) {
	h := newHarness(t, time.Minute, func(_ *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error {
		return sendAll(stream, "r.csv", "user_id;segment;operation;datetime\n")
	})
	for _, query := range []string{
		"?year=2023&month=aug&expires=1&key=k&signature=s",
		"?year=twenty&month=8&expires=1&key=k&signature=s",
		"?year=2023&month=8&expires=soon&key=k&signature=s",
		"?year=2023&month=8.5&expires=1&key=k&signature=s",
		"?year=2023&month=8&expires=1e9&key=k&signature=s",
		"?year=99999999999&month=8&expires=1&key=k&signature=s",             // over int32
		"?year=2023&month=8&expires=99999999999999999999&key=k&signature=s", // over int64
		"?year=2023&month=&expires=1&key=k&signature=s",
	} {
		t.Run(query, func(t *testing.T) {
			entries := wantEnvelope(t, h.do(t, http.MethodGet, Path+query), http.StatusBadRequest, "parse_error")
			if len(entries) != 1 {
				t.Fatalf("entries = %+v, want one", entries)
			}
			if calls := h.fake.take(); len(calls) != 0 {
				t.Fatalf("the upstream was called with %v", calls[0].request)
			}
		})
	}
}

func TestOtherMethodsAre405(t *testing.T) {
	h := newHarness(t, time.Minute, func(_ *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error {
		return sendAll(stream, "r.csv", "user_id;segment;operation;datetime\n")
	})
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		r := h.do(t, method, Path+linkQuery)
		entries := wantEnvelope(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
		if want := "method " + method + " is not allowed on " + Path; len(entries) != 1 || entries[0].Info != want {
			t.Fatalf("%s: entries %+v, want one with info %q", method, entries, want)
		}
		if allow := r.header.Get("Allow"); allow != "GET, HEAD" {
			t.Fatalf("%s: Allow = %q, want \"GET, HEAD\"", method, allow)
		}
	}
	if calls := h.fake.take(); len(calls) != 0 {
		t.Fatalf("the upstream was called %d times for refused methods", len(calls))
	}
}

// HEAD answers with the headers a GET would have and no body, and does not
// read the report: it ends the upstream stream after the first chunk.
func TestHeadIsHeadersOnly(t *testing.T) {
	streamEnded := make(chan error, 1)
	var forGet atomic.Bool
	h := newHarness(t, time.Minute, func(_ *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error {
		if forGet.Load() {
			return sendAll(stream, "segments-history-2023-08.csv", reportChunks...)
		}
		if err := sendAll(stream, "segments-history-2023-08.csv", reportChunks[0]); err != nil {
			return err
		}
		// The rest comes only if someone waits for it.
		select {
		case <-stream.Context().Done():
			streamEnded <- stream.Context().Err()
			return stream.Context().Err()
		case <-time.After(3 * time.Second):
			streamEnded <- nil
			return sendAll(stream, "", "", strings.Join(reportChunks[1:], ""))
		}
	})
	start := time.Now()
	head := h.do(t, http.MethodHead, Path+linkQuery)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("HEAD took %v: it waited for the whole report", took)
	}
	if head.status != http.StatusOK || len(head.body) != 0 {
		t.Fatalf("HEAD: %d with %d body bytes, want 200 and none", head.status, len(head.body))
	}
	select {
	case err := <-streamEnded:
		if err == nil {
			t.Fatal("HEAD kept the upstream stream open for the rest of the report")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("HEAD did not end the upstream stream")
	}
	forGet.Store(true)
	get := h.do(t, http.MethodGet, Path+linkQuery)
	if string(get.body) != strings.Join(reportChunks, "") {
		t.Fatalf("GET body %q", get.body)
	}
	for _, name := range []string{"Content-Type", "Content-Disposition", "Cache-Control", "X-Content-Type-Options"} {
		if head.header.Get(name) == "" || head.header.Get(name) != get.header.Get(name) {
			t.Errorf("%s: HEAD %q, GET %q", name, head.header.Get(name), get.header.Get(name))
		}
	}
}

// Once the headers are out, an upstream error breaks the connection: the
// client's read fails instead of ending cleanly on a truncated file.
func TestErrorAfterFirstChunkAbortsTheTransfer(t *testing.T) {
	const header = "user_id;segment;operation;datetime\n"
	line := "0b7f3c1e-5d2a-4c1b-9f3e-7a6b5c4d3e2f;A;add;2023-08-29T10:13:42.123456Z\n"
	big := header + strings.Repeat(line, 1000) // larger than net/http's buffers: the headers go out at once
	for _, tc := range []struct {
		name   string
		chunks []string
	}{
		{"after the first chunk", []string{big}},
		{"after several chunks", []string{big, strings.Repeat(line, 500), strings.Repeat(line, 500)}},
		// A small first chunk may still sit in net/http's buffer when the
		// error comes; then even the headers never go out, which is a
		// failed request as well.
		{"after a small first chunk", []string{header + line}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, time.Minute, func(_ *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error {
				if err := sendAll(stream, "r.csv", tc.chunks...); err != nil {
					return err
				}
				return status.Error(codes.Unavailable, "the database went away at 10.1.2.3:5432")
			})
			sent := strings.Join(tc.chunks, "")
			resp, err := http.Get(h.url + Path + linkQuery)
			if err == nil {
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != csvType {
					t.Fatalf("status %d, Content-Type %q: the headers should have gone out with the first chunk",
						resp.StatusCode, resp.Header.Get("Content-Type"))
				}
				var got []byte
				got, err = io.ReadAll(resp.Body)
				if err == nil {
					t.Fatalf("the truncated report (%d bytes) read as complete", len(got))
				}
				if !strings.HasPrefix(sent, string(got)) {
					t.Fatalf("body %q is not a prefix of what the upstream sent", got)
				}
			} else if len(sent) >= len(big) {
				t.Fatalf("GET failed before the headers although the first chunk was %d bytes: %v", len(tc.chunks[0]), err)
			}
			logs := h.logs.String()
			if !strings.Contains(logs, "report stream failed after the headers were sent") {
				t.Fatalf("no log line for the failed stream: %s", logs)
			}
		})
	}
}

// The report's deadline is the handler's timeout: an upstream that never
// answers gives 503 once it passes.
func TestTimeoutBoundsTheDownload(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond, func(_ *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error {
		select {
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case <-time.After(10 * time.Second):
			return sendAll(stream, "late.csv", "user_id;segment;operation;datetime\n")
		}
	})
	start := time.Now()
	wantEnvelope(t, h.do(t, http.MethodGet, Path+linkQuery), http.StatusServiceUnavailable, "unavailable")
	if took := time.Since(start); took < 250*time.Millisecond || took > 10*time.Second {
		t.Fatalf("answered after %v, want about the 300ms timeout", took)
	}
	calls := h.fake.take()
	if len(calls) != 1 || calls[0].deadlineLeft <= 0 || calls[0].deadlineLeft > 300*time.Millisecond {
		t.Fatalf("upstream calls %+v, want one with a deadline within 300ms", calls)
	}
}

// A client that goes away mid-report cancels the upstream stream, so the
// server stops reading the database.
func TestClientGoneCancelsUpstream(t *testing.T) {
	cancelled := make(chan struct{})
	h := newHarness(t, time.Minute, func(_ *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error {
		defer close(cancelled)
		chunk := &segmentationv1.DownloadHistoryReportResponse{ContentType: csvType, FileName: "r.csv", Data: bytes.Repeat([]byte("y"), 32<<10)}
		for {
			if err := stream.Send(chunk); err != nil {
				return err
			}
			chunk = &segmentationv1.DownloadHistoryReportResponse{Data: chunk.GetData()}
			select {
			case <-stream.Context().Done():
				return stream.Context().Err()
			case <-time.After(time.Millisecond):
			}
		}
	})
	resp, err := http.Get(h.url + Path + linkQuery)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // mid-stream: closes the connection
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream stream was not cancelled within 10 s of the client leaving")
	}
}

// A large report flows through: the client gets the first bytes long before
// the upstream has sent the last, and the upstream may never get more than
// a few chunks ahead of the client (the fake waits for the client before
// each send), so the handler cannot be holding the report.
func TestLargeReportStreamsWithoutBuffering(t *testing.T) {
	const (
		chunkSize = 64 << 10
		chunks    = 800 // 50 MiB
		ahead     = 8   // chunks the upstream may send beyond what the client has read
	)
	var received atomic.Int64
	progress := make(chan struct{}, 1) // a nudge whenever the client read something
	stalled := make(chan int, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, chunkSize*chunks)
	for i := 0; i < len(data); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			data[i+j] = byte('a' + (v>>(8*j))%26)
		}
	}
	wantSum := sha256.Sum256(data)

	h := newHarness(t, time.Minute, func(_ *segmentationv1.DownloadHistoryReportRequest, stream downloadStream) error {
		for i := range chunks {
			for deadline := time.Now().Add(20 * time.Second); received.Load() < int64(i-ahead)*chunkSize; {
				if time.Now().After(deadline) {
					stalled <- i
					return status.Error(codes.Aborted, "the client stopped receiving")
				}
				select {
				case <-progress:
				case <-time.After(10 * time.Millisecond):
				case <-stream.Context().Done():
					return stream.Context().Err()
				}
			}
			msg := &segmentationv1.DownloadHistoryReportResponse{Data: data[i*chunkSize : (i+1)*chunkSize]}
			if i == 0 {
				msg.ContentType, msg.FileName = csvType, "big.csv"
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		return nil
	})

	resp, err := http.Get(h.url + Path + linkQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" {
		t.Fatalf("Content-Length %s: the handler knew the size in advance, so it buffered", cl)
	}
	sum := sha256.New()
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sum.Write(buf[:n])
		received.Add(int64(n))
		select {
		case progress <- struct{}{}:
		default:
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			select {
			case i := <-stalled:
				t.Fatalf("the client had %d bytes when the upstream wanted to send chunk %d: the handler holds data back", received.Load(), i)
			default:
			}
			t.Fatalf("reading after %d bytes: %v", received.Load(), err)
		}
	}
	if received.Load() != int64(len(data)) {
		t.Fatalf("received %d bytes, want %d", received.Load(), len(data))
	}
	if got := sum.Sum(nil); !bytes.Equal(got, wantSum[:]) {
		t.Fatal("the received bytes differ from the sent ones")
	}
}
