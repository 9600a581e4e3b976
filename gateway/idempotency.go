package gateway

import (
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"segments/gateway/internal/httperr"
)

// The Idempotency-Key header of mutations goes to the server as the gRPC
// metadata idempotency-key, which makes a repeat of the request answer the
// first one's outcome (docs/http-api.md#idempotency-keys). Reads ignore it,
// as the server does. The server checks the key; the gateway checks it as
// well, because gRPC cannot carry what is not printable ASCII: such a key
// would fail the call with an internal error instead of the 400 it deserves.
const (
	idempotencyKeyHeader    = "Idempotency-Key"
	idempotencyKeyMetadata  = "idempotency-key"
	maxIdempotencyKeyLength = 128
)

// incomingHeader passes Idempotency-Key on, and the rest as grpc-gateway
// does by default (the standard headers only).
func incomingHeader(key string) (string, bool) {
	if strings.EqualFold(key, idempotencyKeyHeader) {
		return idempotencyKeyMetadata, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// mutationRoutes are the REST routes of every call that is not a read.
var mutationRoutes = func() map[route]bool {
	out := map[route]bool{}
	protoregistry.GlobalFiles.RangeFilesByPackage("segmentation.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			methods := fd.Services().Get(i).Methods()
			for j := 0; j < methods.Len(); j++ {
				if isRead(string(methods.Get(j).Name())) {
					continue
				}
				for _, r := range httpRoutes(methods.Get(j)) {
					out[r] = true
				}
			}
		}
		return true
	})
	return out
}()

// validIdempotencyKey: 1 to 128 printable ASCII characters, as the server
// requires (server/src/domain/idempotency.h).
func validIdempotencyKey(key string) bool {
	if len(key) == 0 || len(key) > maxIdempotencyKeyLength {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotencyKey refuses a malformed key, or several, on a mutation with
// the server's validation_error, and drops the header from reads. It runs
// inside grpc-gateway's mux, after routing.
func idempotencyKey(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		pattern, ok := runtime.HTTPPattern(r.Context())
		if !ok || !mutationRoutes[route{r.Method, pattern.String()}] {
			r.Header.Del(idempotencyKeyHeader)
			next(w, r, params)
			return
		}
		switch keys := r.Header.Values(idempotencyKeyHeader); {
		case len(keys) > 1:
			httperr.Write(w, http.StatusBadRequest,
				httperr.One(httperr.TypeValidation, idempotencyKeyHeader+": give one key, not several"))
		case len(keys) == 1 && !validIdempotencyKey(keys[0]):
			httperr.Write(w, http.StatusBadRequest, httperr.One(httperr.TypeValidation,
				idempotencyKeyHeader+": must be 1 to 128 printable ASCII characters (0x20 to 0x7E)"))
		default:
			next(w, r, params)
		}
	}
}
