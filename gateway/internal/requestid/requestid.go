// Package requestid gives every HTTP request an id: the client's X-Request-Id
// when it is sane, a new random one otherwise. The id is answered in the
// X-Request-Id header of every response, written in the access log and sent
// to the server as the gRPC metadata x-request-id on every upstream call made
// for the request, so one id ties the client, the gateway's log and the
// server's log together.
package requestid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

const (
	// Header is the HTTP header, both ways.
	Header = "X-Request-Id"
	// MetadataKey is the gRPC metadata key sent upstream.
	MetadataKey = "x-request-id"
	// MaxLength is the longest id taken from a client.
	MaxLength = 128
)

// Sane reports whether a client's id is kept: 1 to MaxLength printable
// ASCII characters without spaces (0x21 to 0x7E), which travels as gRPC
// metadata and in a log line unchanged.
func Sane(id string) bool {
	if len(id) == 0 || len(id) > MaxLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// New makes an id: 16 random bytes in hex (32 characters).
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

type ctxKey struct{}

// WithID returns ctx carrying id.
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the request's id, "" outside a request.
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Middleware picks the request's id (the one X-Request-Id header when it is
// Sane, else a new one), puts it in the request's context and header and in
// the response's header before anything else writes it, so every answer
// carries it: errors, 401s, 404s and streams alike.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ""
		if values := r.Header.Values(Header); len(values) == 1 && Sane(values[0]) {
			id = values[0]
		} else {
			id = New()
		}
		r = r.WithContext(WithID(r.Context(), id))
		r.Header.Set(Header, id)
		w.Header().Set(Header, id)
		next.ServeHTTP(w, r)
	})
}

// Outgoing returns ctx with the request id of ctx (if any) as the outgoing
// metadata x-request-id, replacing any value already there (a client's
// Grpc-Metadata-X-Request-Id header cannot override it).
func Outgoing(ctx context.Context) context.Context {
	id := FromContext(ctx)
	if id == "" {
		return ctx
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(MetadataKey, id)
	return metadata.NewOutgoingContext(ctx, md)
}

// Conn wraps a client connection so that every call made through it, unary
// or streaming, carries the request id of its context (Outgoing). Clients
// made on it (grpc-gateway's, the report download's, the health check's)
// need no other change.
func Conn(cc grpc.ClientConnInterface) grpc.ClientConnInterface {
	return conn{cc}
}

type conn struct{ grpc.ClientConnInterface }

func (c conn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.ClientConnInterface.Invoke(Outgoing(ctx), method, args, reply, opts...)
}

func (c conn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.ClientConnInterface.NewStream(Outgoing(ctx), desc, method, opts...)
}
