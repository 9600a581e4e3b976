package requestid

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
)

var generated = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestSane(t *testing.T) {
	for _, id := range []string{"a", "abc-123", "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b", "!~{}", strings.Repeat("x", 128)} {
		if !Sane(id) {
			t.Errorf("Sane(%q) = false", id)
		}
	}
	for _, id := range []string{"", "a b", "tab\there", "new\nline", "\x7f", "é", strings.Repeat("x", 129)} {
		if Sane(id) {
			t.Errorf("Sane(%q) = true", id)
		}
	}
}

func TestNewIsRandomHex(t *testing.T) {
	a, b := New(), New()
	if !generated.MatchString(a) || a == b {
		t.Fatalf("New() = %q, %q", a, b)
	}
}

// seen runs Middleware over a handler that reports the id it saw in its
// context and header.
func seen(t *testing.T, header []string) (response, inContext, inRequest string) {
	t.Helper()
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inContext, inRequest = FromContext(r.Context()), r.Header.Get(Header)
		http.Error(w, "nope", http.StatusTeapot) // error answers carry it too
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, v := range header {
		req.Header.Add(Header, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusTeapot {
		t.Fatalf("status %d", rec.Code)
	}
	if got := rec.Header().Values(Header); len(got) != 1 {
		t.Fatalf("response has %d %s headers: %q", len(got), Header, got)
	}
	return rec.Header().Get(Header), inContext, inRequest
}

func TestMiddlewareKeepsASaneID(t *testing.T) {
	resp, ctx, req := seen(t, []string{"client-id_42.x"})
	if resp != "client-id_42.x" || ctx != resp || req != resp {
		t.Fatalf("response %q, context %q, request %q", resp, ctx, req)
	}
}

func TestMiddlewareReplacesJunk(t *testing.T) {
	for _, header := range [][]string{{""}, {"has space"}, {strings.Repeat("x", 129)}, {"é"}, {"a", "b"}} {
		resp, ctx, req := seen(t, header)
		if !generated.MatchString(resp) || ctx != resp || req != resp {
			t.Errorf("%q: response %q, context %q, request %q", header, resp, ctx, req)
		}
	}
}

func TestMiddlewareMakesOneWhenMissing(t *testing.T) {
	first, ctx, _ := seen(t, nil)
	second, _, _ := seen(t, nil)
	if !generated.MatchString(first) || ctx != first || first == second {
		t.Fatalf("ids %q (context %q), %q", first, ctx, second)
	}
}

// recorder is a gRPC server that keeps the x-request-id metadata of each
// call, unary and streaming.
type recorder struct{ ids [][]string }

func (r *recorder) keep(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.ids = append(r.ids, md.Get(MetadataKey))
}

func TestConnSendsTheIDOnUnaryAndStreamingCalls(t *testing.T) {
	rec := &recorder{}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			rec.keep(ctx)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(s any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			rec.keep(ss.Context())
			return h(s, ss)
		}))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(Conn(cc))

	// A client's own x-request-id metadata (grpc-gateway passes
	// Grpc-Metadata-X-Request-Id on) is replaced, other metadata kept.
	ctx := metadata.AppendToOutgoingContext(WithID(context.Background(), "req-1"), MetadataKey, "forged", "other", "kept")
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	streamCtx, cancel := context.WithCancel(WithID(context.Background(), "req-2"))
	stream, err := client.Watch(streamCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	// Outside a request: no id.
	if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"req-1"}, {"req-2"}, nil}
	if len(rec.ids) != len(want) {
		t.Fatalf("ids %q, want %q", rec.ids, want)
	}
	for i := range want {
		if strings.Join(rec.ids[i], ",") != strings.Join(want[i], ",") || (want[i] == nil) != (len(rec.ids[i]) == 0) {
			t.Errorf("call %d: ids %q, want %q", i, rec.ids[i], want[i])
		}
	}
}

func TestOutgoingKeepsOtherMetadata(t *testing.T) {
	ctx := metadata.AppendToOutgoingContext(WithID(context.Background(), "id"), "idempotency-key", "k")
	md, _ := metadata.FromOutgoingContext(Outgoing(ctx))
	if got := md.Get("idempotency-key"); len(got) != 1 || got[0] != "k" {
		t.Fatalf("idempotency-key %q", got)
	}
	if got := md.Get(MetadataKey); len(got) != 1 || got[0] != "id" {
		t.Fatalf("x-request-id %q", got)
	}
}
