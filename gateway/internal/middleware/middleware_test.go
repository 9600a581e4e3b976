package middleware

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"segments/gateway/internal/testutil"
)

// decodeEnvelope checks that body is exactly {"errors":[{"type","info"},...]}
// with a non-empty list and returns the entries as [type, info] pairs.
func decodeEnvelope(t *testing.T, body []byte) [][2]string {
	t.Helper()
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&top); err != nil || dec.More() {
		t.Fatalf("error body is not one JSON object: %v; body %q", err, body)
	}
	if len(top) != 1 || top["errors"] == nil {
		t.Fatalf("error body must have exactly the key \"errors\": %q", body)
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(top["errors"], &list); err != nil || len(list) == 0 {
		t.Fatalf("\"errors\" is not a non-empty array of objects: %v; body %q", err, body)
	}
	var out [][2]string
	for i, item := range list {
		var typ, info string
		if len(item) != 2 || json.Unmarshal(item["type"], &typ) != nil || json.Unmarshal(item["info"], &info) != nil ||
			typ == "" || info == "" {
			t.Fatalf("errors[%d] must be exactly {\"type\": non-empty string, \"info\": non-empty string}: %q", i, body)
		}
		out = append(out, [2]string{typ, info})
	}
	return out
}

func checkTooLarge(t *testing.T, code int, header http.Header, body []byte) {
	t.Helper()
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413; body %q", code, body)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	entries := decodeEnvelope(t, body)
	if len(entries) != 1 || entries[0][0] != "payload_too_large" {
		t.Fatalf("entries = %q, want one payload_too_large", entries)
	}
}

// echo answers 200 with the body it read and records that it ran.
type echo struct {
	calls atomic.Int32
	seen  atomic.Int64 // ContentLength the handler saw
}

func (e *echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.calls.Add(1)
	e.seen.Store(r.ContentLength)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusTeapot)
		return
	}
	_, _ = w.Write(body)
}

func TestChainOrder(t *testing.T) {
	var order []string
	wrap := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				order = append(order, name)
				next.ServeHTTP(w, r)
			})
		}
	}
	h := Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { order = append(order, "handler") }),
		wrap("first"), wrap("second"), wrap("third"))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if got := strings.Join(order, ","); got != "first,second,third,handler" {
		t.Fatalf("order = %s", got)
	}
	// No wrappers: the handler itself.
	order = nil
	Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { order = append(order, "handler") })).
		ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if len(order) != 1 {
		t.Fatalf("order = %v", order)
	}
}

func TestLimitBodyExactlyTheLimitPasses(t *testing.T) {
	const limit = 64
	h := &echo{}
	srv := httptest.NewServer(LimitBody(limit)(h))
	defer srv.Close()

	body := strings.Repeat("x", limit)
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != body {
		t.Fatalf("status %d, body %q; want 200 echoing %d bytes", resp.StatusCode, got, limit)
	}
	if h.calls.Load() != 1 || h.seen.Load() != limit {
		t.Fatalf("handler calls %d, saw ContentLength %d; want 1 and %d", h.calls.Load(), h.seen.Load(), limit)
	}
}

func TestLimitBodyOneOverIs413(t *testing.T) {
	const limit = 64
	h := &echo{}
	srv := httptest.NewServer(LimitBody(limit)(h))
	defer srv.Close()

	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(strings.Repeat("x", limit+1)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkTooLarge(t, resp.StatusCode, resp.Header, got)
	if h.calls.Load() != 0 {
		t.Fatalf("the handler ran for a body over the limit")
	}
}

// A chunked body has no Content-Length: the limit is enforced on what is
// actually read.
func TestLimitBodyChunked(t *testing.T) {
	const limit = 64
	for _, size := range []int{0, 1, limit, limit + 1, 10 * limit} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			h := &echo{}
			srv := httptest.NewServer(LimitBody(limit)(h))
			defer srv.Close()
			pr, pw := io.Pipe()
			go func() {
				// Several writes so that the transfer is chunked.
				for i := 0; i < size; i += 10 {
					n := min(10, size-i)
					if _, err := pw.Write([]byte(strings.Repeat("y", n))); err != nil {
						break
					}
				}
				pw.Close()
			}()
			req, _ := http.NewRequest(http.MethodPost, srv.URL, pr)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if size > limit {
				checkTooLarge(t, resp.StatusCode, resp.Header, got)
				if h.calls.Load() != 0 {
					t.Fatalf("the handler ran for a body over the limit")
				}
				return
			}
			if resp.StatusCode != http.StatusOK || len(got) != size {
				t.Fatalf("status %d, %d bytes; want 200 echoing %d bytes", resp.StatusCode, len(got), size)
			}
		})
	}
}

// A Content-Length that understates the body (a handler-level request, as a
// proxy or an HTTP/2 stream could hand over) does not get past the limit.
func TestLimitBodyLyingContentLength(t *testing.T) {
	const limit = 16
	tests := []struct {
		name     string
		declared int64
		actual   int
		want     int
	}{
		{"understated, real body over the limit", 4, limit + 1, http.StatusRequestEntityTooLarge},
		{"understated, real body far over the limit", 1, 100 * limit, http.StatusRequestEntityTooLarge},
		{"unknown length, over the limit", -1, limit + 1, http.StatusRequestEntityTooLarge},
		{"overstated beyond the limit, small body", limit + 1, 2, http.StatusRequestEntityTooLarge},
		{"understated, real body at the limit", 3, limit, http.StatusOK},
		{"unknown length, at the limit", -1, limit, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &echo{}
			req := httptest.NewRequest(http.MethodPost, "/segments/create", strings.NewReader(strings.Repeat("z", tc.actual)))
			req.ContentLength = tc.declared
			rec := httptest.NewRecorder()
			LimitBody(limit)(h).ServeHTTP(rec, req)
			if tc.want == http.StatusRequestEntityTooLarge {
				checkTooLarge(t, rec.Code, rec.Header(), rec.Body.Bytes())
				if h.calls.Load() != 0 {
					t.Fatalf("the handler ran for a body over the limit")
				}
				return
			}
			if rec.Code != http.StatusOK || rec.Body.Len() != tc.actual {
				t.Fatalf("status %d, %d bytes; want 200 echoing %d bytes", rec.Code, rec.Body.Len(), tc.actual)
			}
			if h.seen.Load() != int64(tc.actual) {
				t.Fatalf("handler saw ContentLength %d, want the real %d", h.seen.Load(), tc.actual)
			}
		})
	}
}

// Over a raw connection: a declared Content-Length over the limit is refused
// at once, without waiting for a body that never comes.
func TestLimitBodyDeclaredTooLargeAnswersWithoutReadingBody(t *testing.T) {
	const limit = 1024
	h := &echo{}
	srv := httptest.NewServer(LimitBody(limit)(h))
	defer srv.Close()

	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /segments/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"slug\":", 1<<30)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response while the body is still outstanding: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkTooLarge(t, resp.StatusCode, resp.Header, got)
	if h.calls.Load() != 0 {
		t.Fatalf("the handler ran")
	}
}

type failingBody struct{}

func (failingBody) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
func (failingBody) Close() error             { return nil }

func TestLimitBodyReadErrorIsParseError(t *testing.T) {
	h := &echo{}
	req := httptest.NewRequest(http.MethodPost, "/segments/create", nil)
	req.Body = failingBody{}
	req.ContentLength = 10
	rec := httptest.NewRecorder()
	LimitBody(100)(h).ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q; want 400 application/json", rec.Code, rec.Header().Get("Content-Type"))
	}
	entries := decodeEnvelope(t, rec.Body.Bytes())
	if len(entries) != 1 || entries[0][0] != "parse_error" || strings.Contains(entries[0][1], "connection reset") {
		t.Fatalf("entries = %q, want one parse_error without the I/O error's text", entries)
	}
	if h.calls.Load() != 0 {
		t.Fatalf("the handler ran")
	}
}

func TestLimitBodyNoBody(t *testing.T) {
	h := &echo{}
	rec := httptest.NewRecorder()
	LimitBody(0)(h).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/segments/get-for-user?userID=x", nil))
	if rec.Code != http.StatusOK || h.calls.Load() != 1 {
		t.Fatalf("status %d, calls %d; a request without a body must pass", rec.Code, h.calls.Load())
	}
}

// The 413's info names the limit in readable units.
func TestLimitBodyInfoNamesTheLimit(t *testing.T) {
	for limit, want := range map[int64]string{
		10:      "10 bytes",
		1 << 10: "1 KiB",
		3 << 20: "3 MiB",
		1500:    "1500 bytes",
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("a", int(limit)+1)))
		LimitBody(limit)(&echo{}).ServeHTTP(rec, req)
		checkTooLarge(t, rec.Code, rec.Header(), rec.Body.Bytes())
		if entries := decodeEnvelope(t, rec.Body.Bytes()); !strings.Contains(entries[0][1], want) {
			t.Errorf("limit %d: info %q does not name %q", limit, entries[0][1], want)
		}
	}
}

func TestAccessLogFieldsAndNoSecrets(t *testing.T) {
	const (
		querySecret  = "0b7f3c1e-5d2a-4c1b-9f3e-7a6b5c4d3e2f"
		bodySecret   = "body-secret-AVITO_VOICE_MESSAGES"
		cookieSecret = "cookie-secret-c0ffee"
		authSecret   = "token-secret-deadbeef"
	)
	var logs testutil.SyncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("hello"))
	})
	srv := httptest.NewServer(AccessLog(logger)(inner))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/segments/update-user?userID="+querySecret+"&x=1",
		strings.NewReader(`{"userID":"`+bodySecret+`"}`))
	req.Header.Set("Cookie", "session="+cookieSecret)
	req.Header.Set("Authorization", "Bearer "+authSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()

	out := logs.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one access log line, got %d: %q", len(lines), out)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("log line is not JSON: %v: %q", err, lines[0])
	}
	if rec["method"] != http.MethodPut || rec["path"] != "/segments/update-user" || rec["status"] != float64(http.StatusTeapot) {
		t.Errorf("log line = %v, want method PUT, path /segments/update-user, status 418", rec)
	}
	if rec["bytes"] != float64(len("hello")) {
		t.Errorf("bytes = %v, want %d", rec["bytes"], len("hello"))
	}
	if _, ok := rec["duration_ms"].(float64); !ok {
		t.Errorf("duration_ms missing: %v", rec)
	}
	for _, secret := range []string{querySecret, "x=1", "?", bodySecret, cookieSecret, "session=", authSecret, "Bearer"} {
		if strings.Contains(out, secret) {
			t.Errorf("access log contains %q: %q", secret, out)
		}
	}
}

// Status recorded for handlers that write a body without WriteHeader (200),
// and for error statuses.
func TestAccessLogStatuses(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    int
	}{
		{"implicit 200 on Write", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }, 200},
		{"204", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, 204},
		{"first WriteHeader wins", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			w.WriteHeader(http.StatusOK)
		}, 404},
		{"503", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }, 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs testutil.SyncBuffer
			h := AccessLog(slog.New(slog.NewJSONHandler(&logs, nil)))(tc.handler)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			var line map[string]any
			if err := json.Unmarshal([]byte(logs.String()), &line); err != nil {
				t.Fatalf("log is not one JSON line: %q", logs.String())
			}
			if line["status"] != float64(tc.want) || rec.Code != tc.want {
				t.Fatalf("logged status %v, sent %d; want %d", line["status"], rec.Code, tc.want)
			}
		})
	}
}

// The recorder keeps http.Flusher working for streamed answers.
func TestAccessLogKeepsFlusher(t *testing.T) {
	flushed := false
	inner := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			t.Errorf("the access log's writer is not an http.Flusher")
			return
		}
		_, _ = w.Write([]byte("a"))
		f.Flush()
		flushed = true
	})
	rec := httptest.NewRecorder()
	AccessLog(slog.New(slog.NewTextHandler(io.Discard, nil)))(inner).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if !flushed || !rec.Flushed {
		t.Fatalf("flush did not reach the underlying writer")
	}
}

func TestDeadlineSetsContextDeadline(t *testing.T) {
	const timeout = 3 * time.Second
	var (
		got     time.Time
		hasDL   bool
		ctxSeen context.Context
	)
	inner := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ctxSeen = r.Context()
		got, hasDL = r.Context().Deadline()
	})
	before := time.Now()
	Deadline(timeout)(inner).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	after := time.Now()
	if !hasDL {
		t.Fatal("the handler's context has no deadline")
	}
	if got.Before(before.Add(timeout)) || got.After(after.Add(timeout)) {
		t.Fatalf("deadline %v is not %v after the call (called between %v and %v)", got, timeout, before, after)
	}
	// The deadline's resources are released once the handler returns.
	select {
	case <-ctxSeen.Done():
	default:
		t.Fatal("the context is still live after the handler returned")
	}
}

// A tighter deadline already on the request is kept.
func TestDeadlineKeepsEarlierDeadline(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	want, _ := parent.Deadline()
	var got time.Time
	inner := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got, _ = r.Context().Deadline() })
	req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(parent)
	Deadline(time.Hour)(inner).ServeHTTP(httptest.NewRecorder(), req)
	if !got.Equal(want) {
		t.Fatalf("deadline = %v, want the parent's %v", got, want)
	}
}

// A handler that waits on the context is released when the timeout passes.
func TestDeadlineExpires(t *testing.T) {
	var err error
	inner := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			err = r.Context().Err()
		case <-time.After(10 * time.Second):
		}
	})
	start := time.Now()
	Deadline(20*time.Millisecond)(inner).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("context error = %v, want DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("took %v", elapsed)
	}
}

func TestBearerChallengeOnEvery401Only(t *testing.T) {
	for _, code := range []int{http.StatusOK, http.StatusUnauthorized, http.StatusForbidden} {
		h := BearerChallenge(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(code)
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/segments/get-for-user", nil))
		got := rec.Header().Get("WWW-Authenticate")
		if code == http.StatusUnauthorized && got != BearerChallengeValue {
			t.Errorf("401: WWW-Authenticate = %q, want %q", got, BearerChallengeValue)
		}
		if code != http.StatusUnauthorized && got != "" {
			t.Errorf("%d: WWW-Authenticate = %q, want none", code, got)
		}
	}
}
