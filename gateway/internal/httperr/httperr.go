// Package httperr renders every gateway error as the contract's envelope,
// {"errors":[{"type","info"}]}, with the HTTP status of its type.
package httperr

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
)

// Error types of the envelope.
const (
	TypeParse            = "parse_error"
	TypeValidation       = "validation_error"
	TypeNotFound         = "not_found"
	TypeConflict         = "conflict"
	TypeUnauthenticated  = "unauthenticated"
	TypePermission       = "permission_denied"
	TypeTooLarge         = "payload_too_large"
	TypeMethodNotAllowed = "method_not_allowed"
	TypeUnavailable      = "unavailable"
	TypeNotImplemented   = "not_implemented"
	TypeInternal         = "internal_error"
)

// Entry is one problem of a request.
type Entry = segmentationv1.RestErrorResponse_Error

// Write answers with `code` and the envelope holding `entries`.
func Write(w http.ResponseWriter, code int, entries ...*Entry) {
	body, ok := Body(entries...)
	if !ok {
		code = http.StatusInternalServerError
	}
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// Body is the envelope holding `entries`, as bytes; ok is false (and the
// body a generic internal_error) if they could not be encoded.
func Body(entries ...*Entry) (body []byte, ok bool) {
	// encoding/json rather than protojson: stable bytes, same shape.
	type entry struct {
		Type string `json:"type"`
		Info string `json:"info"`
	}
	envelope := struct {
		Errors []entry `json:"errors"`
	}{Errors: make([]entry, 0, len(entries))}
	for _, e := range entries {
		envelope.Errors = append(envelope.Errors, entry{Type: e.GetType(), Info: e.GetInfo()})
	}
	body, err := json.Marshal(envelope)
	if err != nil { // cannot happen with plain strings; keep the envelope anyway
		return []byte(`{"errors":[{"type":"internal_error","info":"internal error"}]}`), false
	}
	return body, true
}

// One builds a single entry.
func One(typ, info string) *Entry { return &Entry{Type: typ, Info: info} }

// FromStatus maps a gRPC status to the HTTP status and the entries: one per
// google.rpc.BadRequest field violation the server reported. An
// INVALID_ARGUMENT without violations comes from the gateway itself failing
// to read the request (JSON syntax, JSON types, query values): parse_error,
// with the message as it is, since the gateway's decoders (package decode)
// write it as "field: problem".
func FromStatus(st *status.Status) (int, []*Entry) {
	violations := fieldViolations(st)
	entries := func(typ string) []*Entry {
		if len(violations) == 0 {
			return []*Entry{One(typ, st.Message())}
		}
		out := make([]*Entry, 0, len(violations))
		for _, v := range violations {
			info := v.GetDescription()
			if v.GetField() != "" {
				info = v.GetField() + ": " + info
			}
			out = append(out, One(typ, info))
		}
		return out
	}
	switch st.Code() {
	case codes.InvalidArgument:
		if len(violations) == 0 {
			return http.StatusBadRequest, []*Entry{One(TypeParse, parseDetail(st.Message()))}
		}
		return http.StatusBadRequest, entries(TypeValidation)
	case codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest, entries(TypeValidation)
	case codes.NotFound:
		return http.StatusNotFound, entries(TypeNotFound)
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict, entries(TypeConflict)
	case codes.Unauthenticated:
		return http.StatusUnauthorized, entries(TypeUnauthenticated)
	case codes.PermissionDenied:
		return http.StatusForbidden, entries(TypePermission)
	case codes.Unimplemented:
		return http.StatusNotImplemented, entries(TypeNotImplemented)
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Canceled:
		// The upstream's own words may name hosts and ports: say it plainly.
		return http.StatusServiceUnavailable, []*Entry{One(TypeUnavailable, "service unavailable; safe to retry")}
	default:
		return http.StatusInternalServerError, []*Entry{One(TypeInternal, "internal error")}
	}
}

// parseDetail drops the "proto:" prefix of protobuf-go's messages, which
// protobuf-go spells with a random kind of space on purpose, should one
// come by; an empty message becomes a generic one.
func parseDetail(message string) string {
	for _, prefix := range []string{"proto: ", "proto:\u00a0"} {
		message = strings.TrimPrefix(message, prefix)
	}
	if message == "" {
		return "cannot parse the request"
	}
	return message
}

func fieldViolations(st *status.Status) []*errdetails.BadRequest_FieldViolation {
	var out []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			out = append(out, br.GetFieldViolations()...)
		}
	}
	return out
}

// ErrorHandler is the grpc-gateway hook for errors of calls and of reading
// requests.
func ErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	code, entries := FromStatus(status.Convert(err))
	Write(w, code, entries...)
}

// StreamErrorHandler is the grpc-gateway hook for errors of server-streaming
// calls. grpc-gateway answers the HTTP status of the code it returns (when
// no message was sent yet) and writes the status as a chunk
// {"error": status}, which the gateway's marshaler renders as the envelope of
// FromStatus. The codes that grpc-gateway maps to another HTTP status than
// FromStatus does become UNAVAILABLE, so both agree.
func StreamErrorHandler(_ context.Context, err error) *status.Status {
	st := status.Convert(err)
	switch st.Code() {
	case codes.DeadlineExceeded, codes.ResourceExhausted, codes.Canceled:
		return status.New(codes.Unavailable, st.Message())
	}
	return st
}

// RoutingErrorHandler is the grpc-gateway hook for paths and methods that
// match no route.
func RoutingErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	switch code {
	case http.StatusMethodNotAllowed:
		Write(w, code, One(TypeMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path))
	case http.StatusNotFound:
		Write(w, code, One(TypeNotFound, "no such path: "+r.URL.Path))
	default:
		Write(w, code, One(TypeParse, http.StatusText(code)))
	}
}
