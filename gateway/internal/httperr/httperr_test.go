package httperr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// entry is one decoded envelope entry.
type entry struct {
	Type string
	Info string
}

// decodeEnvelope checks that body is exactly {"errors":[{"type","info"},...]}
// with a non-empty list, no other keys and string values, and returns the
// entries.
func decodeEnvelope(t *testing.T, body []byte) []entry {
	t.Helper()
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&top); err != nil {
		t.Fatalf("error body is not a JSON object: %v; body %q", err, body)
	}
	if dec.More() {
		t.Fatalf("error body has data after the JSON object: %q", body)
	}
	if len(top) != 1 || top["errors"] == nil {
		t.Fatalf("error body must have exactly the key \"errors\": %q", body)
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(top["errors"], &list); err != nil {
		t.Fatalf("\"errors\" is not an array of objects: %v; body %q", err, body)
	}
	if len(list) == 0 {
		t.Fatalf("\"errors\" is empty: %q", body)
	}
	out := make([]entry, 0, len(list))
	for i, item := range list {
		if len(item) != 2 || item["type"] == nil || item["info"] == nil {
			t.Fatalf("errors[%d] must have exactly \"type\" and \"info\": %q", i, body)
		}
		var e entry
		if err := json.Unmarshal(item["type"], &e.Type); err != nil || e.Type == "" {
			t.Fatalf("errors[%d].type is not a non-empty string: %q", i, body)
		}
		if err := json.Unmarshal(item["info"], &e.Info); err != nil || e.Info == "" {
			t.Fatalf("errors[%d].info is not a non-empty string: %q", i, body)
		}
		out = append(out, e)
	}
	return out
}

// checkResponse checks status, content type and envelope of a recorded
// error response and returns its entries.
func checkResponse(t *testing.T, rec *httptest.ResponseRecorder, wantStatus int) []entry {
	t.Helper()
	if rec.Code != wantStatus {
		t.Fatalf("status = %d, want %d; body %q", rec.Code, wantStatus, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	return decodeEnvelope(t, rec.Body.Bytes())
}

func withViolations(t *testing.T, code codes.Code, msg string, violations ...*errdetails.BadRequest_FieldViolation) *status.Status {
	t.Helper()
	st, err := status.New(code, msg).WithDetails(&errdetails.BadRequest{FieldViolations: violations})
	if err != nil {
		t.Fatalf("WithDetails: %v", err)
	}
	return st
}

func violation(field, description string) *errdetails.BadRequest_FieldViolation {
	return &errdetails.BadRequest_FieldViolation{Field: field, Description: description}
}

// Every gRPC code maps to the HTTP status and envelope type of the
// contract's table (§3); codes the table does not list map to the closest
// documented behaviour.
func TestFromStatusEveryCode(t *testing.T) {
	tests := []struct {
		code       codes.Code
		wantStatus int
		wantType   string
	}{
		{codes.InvalidArgument, http.StatusBadRequest, TypeParse}, // no details: the gateway failed to read the request
		{codes.FailedPrecondition, http.StatusBadRequest, TypeValidation},
		{codes.OutOfRange, http.StatusBadRequest, TypeValidation},
		{codes.NotFound, http.StatusNotFound, TypeNotFound},
		{codes.AlreadyExists, http.StatusConflict, TypeConflict},
		{codes.Aborted, http.StatusConflict, TypeConflict},
		{codes.Unauthenticated, http.StatusUnauthorized, TypeUnauthenticated},
		{codes.PermissionDenied, http.StatusForbidden, TypePermission},
		{codes.Unimplemented, http.StatusNotImplemented, TypeNotImplemented},
		{codes.Unavailable, http.StatusServiceUnavailable, TypeUnavailable},
		{codes.DeadlineExceeded, http.StatusServiceUnavailable, TypeUnavailable},
		{codes.ResourceExhausted, http.StatusServiceUnavailable, TypeUnavailable},
		{codes.Canceled, http.StatusServiceUnavailable, TypeUnavailable},
		{codes.Internal, http.StatusInternalServerError, TypeInternal},
		{codes.Unknown, http.StatusInternalServerError, TypeInternal},
		{codes.DataLoss, http.StatusInternalServerError, TypeInternal},
	}
	seen := map[codes.Code]bool{codes.OK: true}
	for _, tc := range tests {
		seen[tc.code] = true
		t.Run(tc.code.String(), func(t *testing.T) {
			const msg = "upstream said: something about 10.1.2.3:5432"
			gotStatus, entries := FromStatus(status.New(tc.code, msg))
			if gotStatus != tc.wantStatus {
				t.Errorf("HTTP status = %d, want %d", gotStatus, tc.wantStatus)
			}
			if len(entries) != 1 {
				t.Fatalf("entries = %v, want exactly one", entries)
			}
			if entries[0].GetType() != tc.wantType {
				t.Errorf("type = %q, want %q", entries[0].GetType(), tc.wantType)
			}
			if entries[0].GetInfo() == "" {
				t.Errorf("info is empty")
			}
			leaks := tc.wantType == TypeUnavailable || tc.wantType == TypeInternal
			if leaks && strings.Contains(entries[0].GetInfo(), "10.1.2.3") {
				t.Errorf("info %q leaks the upstream's message", entries[0].GetInfo())
			}
			if !leaks && !strings.HasSuffix(entries[0].GetInfo(), msg) {
				t.Errorf("info = %q, want it to carry the status message %q", entries[0].GetInfo(), msg)
			}
		})
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if !seen[c] {
			t.Errorf("code %v is not covered by this test", c)
		}
	}
}

// The table's error types with the field violations the server sends: one
// entry per violation, "field: description", in order.
func TestFromStatusOneEntryPerViolation(t *testing.T) {
	tests := []struct {
		code       codes.Code
		wantStatus int
		wantType   string
	}{
		{codes.InvalidArgument, http.StatusBadRequest, TypeValidation},
		{codes.FailedPrecondition, http.StatusBadRequest, TypeValidation},
		{codes.OutOfRange, http.StatusBadRequest, TypeValidation},
		{codes.NotFound, http.StatusNotFound, TypeNotFound},
		{codes.AlreadyExists, http.StatusConflict, TypeConflict},
		{codes.Aborted, http.StatusConflict, TypeConflict},
		{codes.Unauthenticated, http.StatusUnauthorized, TypeUnauthenticated},
		{codes.PermissionDenied, http.StatusForbidden, TypePermission},
		{codes.Unimplemented, http.StatusNotImplemented, TypeNotImplemented},
	}
	for _, tc := range tests {
		t.Run(tc.code.String(), func(t *testing.T) {
			st := withViolations(t, tc.code, "combined message that must not be used",
				violation("segmentsToAdd[0].segmentSlug", `segment "A" does not exist`),
				violation("segmentsToAdd[1].segmentSlug", `segment "B" does not exist`),
				violation("", "segmentsToAdd or segmentsToRemove must list at least one segment"),
				violation("segmentsToRemove[0].segmentSlug", `segment "C" does not exist`),
			)
			gotStatus, entries := FromStatus(st)
			if gotStatus != tc.wantStatus {
				t.Errorf("HTTP status = %d, want %d", gotStatus, tc.wantStatus)
			}
			want := []string{
				`segmentsToAdd[0].segmentSlug: segment "A" does not exist`,
				`segmentsToAdd[1].segmentSlug: segment "B" does not exist`,
				"segmentsToAdd or segmentsToRemove must list at least one segment",
				`segmentsToRemove[0].segmentSlug: segment "C" does not exist`,
			}
			if len(entries) != len(want) {
				t.Fatalf("got %d entries %v, want %d", len(entries), entries, len(want))
			}
			for i, e := range entries {
				if e.GetType() != tc.wantType || e.GetInfo() != want[i] {
					t.Errorf("entries[%d] = {%q, %q}, want {%q, %q}", i, e.GetType(), e.GetInfo(), tc.wantType, want[i])
				}
			}
		})
	}
}

// Violations spread over several BadRequest details are all reported; other
// detail types are ignored.
func TestFromStatusSeveralDetails(t *testing.T) {
	st, err := status.New(codes.NotFound, "x").WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{violation("a", "one")}},
		&errdetails.ErrorInfo{Reason: "IGNORED"},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{violation("b", "two")}},
	)
	if err != nil {
		t.Fatal(err)
	}
	code, entries := FromStatus(st)
	if code != http.StatusNotFound || len(entries) != 2 ||
		entries[0].GetInfo() != "a: one" || entries[1].GetInfo() != "b: two" {
		t.Fatalf("FromStatus = %d %v, want 404 with [a: one, b: two]", code, entries)
	}
}

// INVALID_ARGUMENT without violations is the gateway's own failure to read
// the request (protojson or query parsing): parse_error naming the problem.
func TestInvalidArgumentWithoutDetailsIsParseError(t *testing.T) {
	const detail = `(line 1:10): invalid value for string field slug: 5`
	// protobuf-go prefixes "proto:" with a space or a no-break space, at random.
	for _, msg := range []string{detail, "proto: " + detail, "proto:\u00a0" + detail} {
		code, entries := FromStatus(status.New(codes.InvalidArgument, msg))
		if code != http.StatusBadRequest || len(entries) != 1 || entries[0].GetType() != TypeParse {
			t.Fatalf("FromStatus(%q) = %d %v, want one 400 parse_error", msg, code, entries)
		}
		if info := entries[0].GetInfo(); !strings.HasSuffix(info, detail) || strings.Contains(info, "proto:") {
			t.Errorf("FromStatus(%q): info = %q, want it to end with %q and drop \"proto:\"", msg, info, detail)
		}
	}
	// The gateway's decoders write complete texts: shown as they are, and
	// never an empty info.
	for msg, want := range map[string]string{`month: must be an integer, got ""`: `month: must be an integer, got ""`, "": "cannot parse the request"} {
		if _, entries := FromStatus(status.New(codes.InvalidArgument, msg)); len(entries) != 1 || entries[0].GetInfo() != want {
			t.Errorf("FromStatus(%q): entries %v, want one with info %q", msg, entries, want)
		}
	}
	const msg = detail
	// An empty BadRequest detail is still "no violations".
	code, entries := FromStatus(withViolations(t, codes.InvalidArgument, msg))
	if code != http.StatusBadRequest || len(entries) != 1 || entries[0].GetType() != TypeParse {
		t.Fatalf("FromStatus with an empty BadRequest = %d %v, want 400 parse_error", code, entries)
	}
}

// UNAVAILABLE (and its kin) never carries the upstream's words, not even in
// the field violations.
func TestUnavailableNeverLeaksUpstreamMessage(t *testing.T) {
	for _, code := range []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Canceled} {
		st := withViolations(t, code, "connection error: desc = \"transport: Error while dialing: dial tcp 10.9.8.7:50051: connect: connection refused\"",
			violation("db", "host db.internal:5432 refused the connection"))
		httpCode, entries := FromStatus(st)
		if httpCode != http.StatusServiceUnavailable || len(entries) != 1 || entries[0].GetType() != TypeUnavailable {
			t.Fatalf("%v: FromStatus = %d %v, want one 503 unavailable entry", code, httpCode, entries)
		}
		for _, secret := range []string{"10.9.8.7", "50051", "dial", "db.internal", "5432", "refused"} {
			if strings.Contains(entries[0].GetInfo(), secret) {
				t.Errorf("%v: info %q leaks %q", code, entries[0].GetInfo(), secret)
			}
		}
	}
}

// INTERNAL never carries the upstream's words (SQL, stack text).
func TestInternalNeverLeaksUpstreamMessage(t *testing.T) {
	for _, code := range []codes.Code{codes.Internal, codes.Unknown, codes.DataLoss} {
		st := withViolations(t, code, `ERROR: relation "memberships" does not exist (SQLSTATE 42P01) at pg_store.cc:120`,
			violation("sql", "SELECT * FROM users"))
		httpCode, entries := FromStatus(st)
		if httpCode != http.StatusInternalServerError || len(entries) != 1 || entries[0].GetType() != TypeInternal {
			t.Fatalf("%v: FromStatus = %d %v, want one 500 internal_error entry", code, httpCode, entries)
		}
		for _, secret := range []string{"SQLSTATE", "memberships", "SELECT", "pg_store"} {
			if strings.Contains(entries[0].GetInfo(), secret) {
				t.Errorf("%v: info %q leaks %q", code, entries[0].GetInfo(), secret)
			}
		}
	}
}

func TestWrite(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Length", "12345")
	rec.Header().Set("Content-Type", "text/plain")
	Write(rec, http.StatusConflict, One(TypeConflict, `segment "A" already exists`), One(TypeConflict, "second"))
	entries := checkResponse(t, rec, http.StatusConflict)
	want := []entry{{TypeConflict, `segment "A" already exists`}, {TypeConflict, "second"}}
	if fmt.Sprint(entries) != fmt.Sprint(want) {
		t.Errorf("entries = %v, want %v", entries, want)
	}
	if got := rec.Header().Get("Content-Length"); got != "" {
		t.Errorf("a stale Content-Length %q survived", got)
	}
	if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
}

// Info text with quotes, backslashes, control characters, HTML and
// non-ASCII stays valid JSON and round-trips.
func TestWriteEscapes(t *testing.T) {
	info := "slug: \"Сегмент 🚀\" \\ <script>\n\t\x01 & done"
	rec := httptest.NewRecorder()
	Write(rec, http.StatusBadRequest, One(TypeValidation, info))
	entries := checkResponse(t, rec, http.StatusBadRequest)
	if len(entries) != 1 || entries[0].Info != info {
		t.Fatalf("entries = %q, want info %q", entries, info)
	}
}

func TestErrorHandler(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		want       []entry
	}{
		{
			name:       "not found with three violations",
			err:        withViolations(t, codes.NotFound, "m", violation("segmentsToAdd[0].segmentSlug", "x"), violation("segmentsToAdd[1].segmentSlug", "y"), violation("segmentsToRemove[0].segmentSlug", "z")).Err(),
			wantStatus: http.StatusNotFound,
			want: []entry{
				{TypeNotFound, "segmentsToAdd[0].segmentSlug: x"},
				{TypeNotFound, "segmentsToAdd[1].segmentSlug: y"},
				{TypeNotFound, "segmentsToRemove[0].segmentSlug: z"},
			},
		},
		{
			name:       "parse error",
			err:        status.Error(codes.InvalidArgument, "unexpected token"),
			wantStatus: http.StatusBadRequest,
			want:       []entry{{TypeParse, "unexpected token"}},
		},
		{
			name:       "conflict",
			err:        withViolations(t, codes.AlreadyExists, "m", violation("slug", `segment "A" already exists`)).Err(),
			wantStatus: http.StatusConflict,
			want:       []entry{{TypeConflict, `slug: segment "A" already exists`}},
		},
		{
			name:       "plain Go error",
			err:        errors.New("boom at /src/x.go:12"),
			wantStatus: http.StatusInternalServerError,
			want:       []entry{{TypeInternal, "internal error"}},
		},
		{
			name:       "context deadline",
			err:        status.FromContextError(context.DeadlineExceeded).Err(),
			wantStatus: http.StatusServiceUnavailable,
			want:       []entry{{TypeUnavailable, "service unavailable; safe to retry"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/segments/create", nil)
			ErrorHandler(req.Context(), nil, nil, rec, req, tc.err)
			entries := checkResponse(t, rec, tc.wantStatus)
			if fmt.Sprint(entries) != fmt.Sprint(tc.want) {
				t.Errorf("entries = %q, want %q", entries, tc.want)
			}
		})
	}
}

func TestRoutingErrorHandler(t *testing.T) {
	tests := []struct {
		method, path string
		code         int
		wantType     string
		wantInfo     string
	}{
		{http.MethodGet, "/nope", http.StatusNotFound, TypeNotFound, "no such path: /nope"},
		{http.MethodGet, "/segments/create", http.StatusMethodNotAllowed, TypeMethodNotAllowed, "method GET is not allowed on /segments/create"},
		{http.MethodGet, "/x", http.StatusBadRequest, TypeParse, "Bad Request"},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, tc.path, nil)
		RoutingErrorHandler(req.Context(), nil, nil, rec, req, tc.code)
		entries := checkResponse(t, rec, tc.code)
		if len(entries) != 1 || entries[0].Type != tc.wantType || entries[0].Info != tc.wantInfo {
			t.Errorf("%s %s (%d): entries = %q, want {%q, %q}", tc.method, tc.path, tc.code, entries, tc.wantType, tc.wantInfo)
		}
	}
}

// The hooks installed in a real grpc-gateway mux: unknown paths give 404 and
// known paths with another method give 405, both in the envelope.
func TestRoutingThroughServeMux(t *testing.T) {
	mux := runtime.NewServeMux(
		runtime.WithErrorHandler(ErrorHandler),
		runtime.WithRoutingErrorHandler(RoutingErrorHandler),
	)
	if err := mux.HandlePath(http.MethodPost, "/segments/create", func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
		w.WriteHeader(http.StatusNoContent)
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, target string
		wantStatus     int
		wantType       string
	}{
		{http.MethodPost, "/segments/create", http.StatusNoContent, ""},
		{http.MethodGet, "/segments/create", http.StatusMethodNotAllowed, TypeMethodNotAllowed},
		{http.MethodDelete, "/segments/create", http.StatusMethodNotAllowed, TypeMethodNotAllowed},
		{http.MethodPost, "/segments/unknown", http.StatusNotFound, TypeNotFound},
		{http.MethodGet, "/", http.StatusNotFound, TypeNotFound},
		{http.MethodPost, "/segments/create/extra", http.StatusNotFound, TypeNotFound},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.target, strings.NewReader("{}")))
		if tc.wantType == "" {
			if rec.Code != tc.wantStatus {
				t.Errorf("%s %s: status %d, want %d", tc.method, tc.target, rec.Code, tc.wantStatus)
			}
			continue
		}
		entries := checkResponse(t, rec, tc.wantStatus)
		if len(entries) != 1 || entries[0].Type != tc.wantType {
			t.Errorf("%s %s: entries = %q, want one %q", tc.method, tc.target, entries, tc.wantType)
		}
	}
}

// The status a stream error hands to grpc-gateway must give the same HTTP
// status as FromStatus, whose envelope the gateway writes for it.
func TestStreamErrorHandlerAgreesWithFromStatus(t *testing.T) {
	for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
		in := status.New(c, "upstream words at 10.0.0.5:5432")
		wantCode, wantEntries := FromStatus(in)
		st := StreamErrorHandler(context.Background(), in.Err())
		if got := runtime.HTTPStatusFromCode(st.Code()); got != wantCode {
			t.Errorf("%v: grpc-gateway would answer %d, FromStatus %d", c, got, wantCode)
		}
		_, gotEntries := FromStatus(st)
		if len(gotEntries) != len(wantEntries) || gotEntries[0].GetType() != wantEntries[0].GetType() {
			t.Errorf("%v: entries %v, want %v", c, gotEntries, wantEntries)
		}
	}
}
