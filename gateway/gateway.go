// Package gateway serves the original HTTP API of the segments service by
// translating it to gRPC calls on the server (grpc-gateway, generated from
// proto/), with the contract's error envelope, Swagger UI and a health check
// of the upstream.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
	"segments/gateway/internal/console"
	"segments/gateway/internal/decode"
	"segments/gateway/internal/httperr"
	"segments/gateway/internal/metrics"
	"segments/gateway/internal/middleware"
	"segments/gateway/internal/report"
	"segments/gateway/internal/requestid"
	"segments/gateway/internal/swagger"
)

// Options configure the gateway. Zero values take the defaults noted.
type Options struct {
	// Addr is the HTTP listen address (default ":8080"). Ignored when
	// Listener is set.
	Addr string
	// Listener, when set, is served instead of listening on Addr.
	Listener net.Listener
	// Upstream is the gRPC server's address, host:port. Required.
	Upstream string
	// UpstreamTLS: how to reach an upstream that serves TLS (zero: plaintext).
	UpstreamTLS UpstreamTLS
	// UpstreamTimeout bounds each call to the upstream (default 10s), except
	// report downloads and the calls of LongUpstreamTimeout.
	UpstreamTimeout time.Duration
	// LongUpstreamTimeout bounds each call that works on whole sets of users
	// (create with percentToFill, remove a segment, update-percent,
	// bulk-add, bulk-remove) or streams a whole segment (stream-members);
	// default 10m. See longRPCs.
	LongUpstreamTimeout time.Duration
	// ReportTimeout bounds one report download (default 30m).
	ReportTimeout time.Duration
	// MaxBodyBytes is the largest request body accepted (default 8 MiB: a
	// bulk call with 100,000 user ids is about 4 MB of JSON).
	MaxBodyBytes int64
	// ShutdownTimeout is how long in-flight requests get once ctx is
	// cancelled (default 10s).
	ShutdownTimeout time.Duration
	// Logger receives access logs and lifecycle messages (default:
	// slog.Default()).
	Logger *slog.Logger
	// Version is the build_info metric's version label (default "dev").
	Version string
}

func (o *Options) applyDefaults() error {
	if o.Upstream == "" {
		return errors.New("gateway: Upstream is required")
	}
	if o.Addr == "" {
		o.Addr = ":8080"
	}
	if o.UpstreamTimeout <= 0 {
		o.UpstreamTimeout = 10 * time.Second
	}
	if o.LongUpstreamTimeout <= 0 {
		o.LongUpstreamTimeout = 10 * time.Minute
	}
	if o.ReportTimeout <= 0 {
		o.ReportTimeout = 30 * time.Minute
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	return nil
}

// DefaultMaxBodyBytes is the default of Options.MaxBodyBytes.
const DefaultMaxBodyBytes = 8 << 20

// maxUpstreamMessageBytes bounds one gRPC message either way between the
// gateway and the server. Requests are bounded by the body limit first (a
// proto is no larger than its JSON but for pathological inputs; the server
// accepts 16 MiB), and responses are pages and stream batches, a few MB at
// most: a page of 1000 segments with long descriptions and filters can pass
// grpc-go's default receive limit of 4 MB.
const maxUpstreamMessageBytes = 64 << 20

// DialOptions are the options of the gateway's connection to the server,
// for request bodies of up to maxBodyBytes.
//
// The server lists every problem of a request in its status (message and
// details), which travels in HTTP/2 trailers: a change-for-user body of
// 8 MiB naming unknown slugs gets 20 MB of them (long slugs) to about 90 MB
// (the shortest), past grpc-go's default limit of 16 MB, which would turn
// the 404 into a 5xx. The limit allows 16 times the body.
func DialOptions(maxBodyBytes int64, creds credentials.TransportCredentials) []grpc.DialOption {
	headerBytes := max(16<<20, min(16*maxBodyBytes, 1<<30))
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallSendMsgSize(maxUpstreamMessageBytes),
			grpc.MaxCallRecvMsgSize(maxUpstreamMessageBytes),
		),
		grpc.WithMaxHeaderListSize(uint32(headerBytes)),
	}
}

// Run serves until ctx is cancelled, then stops accepting requests and lets
// in-flight ones finish within ShutdownTimeout.
func Run(ctx context.Context, opts Options) error {
	if err := opts.applyDefaults(); err != nil {
		return err
	}
	creds, err := opts.UpstreamTLS.Credentials()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(opts.Upstream, DialOptions(opts.MaxBodyBytes, creds)...)
	if err != nil {
		return fmt.Errorf("gateway: upstream %q: %w", opts.Upstream, err)
	}
	defer conn.Close()

	handler, err := NewHandler(ctx, conn, opts)
	if err != nil {
		return err
	}
	listener := opts.Listener
	if listener == nil {
		if listener, err = net.Listen("tcp", opts.Addr); err != nil {
			return fmt.Errorf("gateway: listen on %s: %w", opts.Addr, err)
		}
	}
	server := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	opts.Logger.Info("gateway serving", "addr", listener.Addr().String(), "upstream", opts.Upstream)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	opts.Logger.Info("gateway shutting down", "grace", opts.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}

// NewHandler builds the HTTP handler over an upstream connection: the API
// routes (each with the upstream deadline of its route), report downloads,
// /healthz, /swagger/, /console/ and /metrics, all behind request ids,
// metrics, access logs and the body limit. conn should be made with
// DialOptions.
func NewHandler(ctx context.Context, conn *grpc.ClientConn, opts Options) (http.Handler, error) {
	if err := opts.applyDefaults(); err != nil {
		return nil, err
	}
	paths := routedPaths()
	if paths[metrics.Path] != nil {
		return nil, fmt.Errorf("gateway: an API route takes %s, the metrics path", metrics.Path)
	}
	// Every upstream call carries the request's id.
	upstream := requestid.Conn(conn)
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &compactJSON{runtime.JSONPb{
			// Zero numbers, empty strings and empty lists are written; an
			// absent message (a permanent member's expiresAt) is left out.
			MarshalOptions:   protojson.MarshalOptions{EmitDefaultValues: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}}),
		runtime.SetQueryParameterParser(&decode.QueryParser{}),
		runtime.WithErrorHandler(httperr.ErrorHandler),
		runtime.WithStreamErrorHandler(httperr.StreamErrorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler(paths)),
		runtime.WithForwardResponseOption(noContentForMutations),
		runtime.WithHealthzEndpoint(grpc_health_v1.NewHealthClient(upstream)),
		// Pass no HTTP headers on as gRPC metadata but the standard ones and
		// Idempotency-Key (idempotency.go), and no gRPC metadata back as
		// Grpc-Metadata-* headers or trailers: the server's metadata is not
		// part of the HTTP API.
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(dropMetadata),
		runtime.WithOutgoingTrailerMatcher(dropMetadata),
		runtime.WithMiddlewares(routePattern, upstreamDeadline(&opts), idempotencyKey),
	)
	if err := segmentationv1.RegisterSegmentServiceHandlerClient(ctx, mux, segmentationv1.NewSegmentServiceClient(upstream)); err != nil {
		return nil, err
	}
	if err := segmentationv1.RegisterUserAdminServiceHandlerClient(ctx, mux, segmentationv1.NewUserAdminServiceClient(upstream)); err != nil {
		return nil, err
	}
	if err := segmentationv1.RegisterHistoryServiceHandlerClient(ctx, mux, segmentationv1.NewHistoryServiceClient(upstream)); err != nil {
		return nil, err
	}
	httpMetrics := metrics.New(opts.Version)

	root := http.NewServeMux()
	root.Handle("/swagger/", swagger.Handler())
	root.Handle("/swagger", swagger.Handler())
	root.Handle("/console/", console.Handler())
	root.Handle("/console", console.Handler())
	// An exact path wins over "/": the generated handler of this route is
	// never reached.
	root.Handle(report.Path, report.Handler(segmentationv1.NewHistoryServiceClient(upstream), opts.ReportTimeout, opts.Logger))
	root.Handle(metrics.Path, httpMetrics.Handler())
	// The upstream deadline is set inside mux, once the route is known.
	root.Handle("/", mux)
	return middleware.Chain(root,
		requestid.Middleware,
		middleware.Routes(paths.route),
		httpMetrics.Middleware,
		middleware.AccessLog(opts.Logger),
		middleware.BearerChallenge,
		middleware.LimitBody(opts.MaxBodyBytes),
		middleware.RequireUTF8Query,
		servePaths(paths, report.Path),
	), nil
}

func dropMetadata(string) (string, bool) { return "", false }

// compactJSON is protojson without the random spaces protojson adds on
// purpose, so that equal answers are equal bytes (clients, caches, docs),
// and with the body decoder of package decode: a body is one JSON object
// and nothing else, its keys match as encoding/json matches them, and
// errors name the field.
type compactJSON struct{ runtime.JSONPb }

// NewDecoder reads the whole body (LimitBody has bounded it already). An
// empty body decodes as io.EOF, which grpc-gateway treats as an empty
// request. grpc-gateway turns an error into INVALID_ARGUMENT with the
// error's text, which httperr shows as it is.
func (m *compactJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return errors.New("cannot read the request body")
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return io.EOF
		}
		msg, ok := v.(proto.Message)
		if !ok { // a body bound to a field that is not a message; none today
			return m.JSONPb.Unmarshal(data, v)
		}
		return decode.Body(data, msg, m.UnmarshalOptions)
	})
}

// NewEncoder writes compact bytes too (grpc-gateway uses it for /healthz).
func (m *compactJSON) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		data, err := m.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(append(data, '\n'))
		return err
	})
}

// StreamContentType: a server stream is newline-delimited JSON, one
// {"result": message} object per line.
func (m *compactJSON) StreamContentType(any) string { return "application/x-ndjson" }

// Marshal writes compact JSON. grpc-gateway's chunk for the error of a
// server stream, {"error": google.rpc.Status}, becomes the contract's
// envelope: the whole body when the stream failed before its first message
// (with the status of httperr.StreamErrorHandler), or its last line.
func (m *compactJSON) Marshal(v any) ([]byte, error) {
	if chunk, ok := v.(map[string]proto.Message); ok && len(chunk) == 1 {
		if st, ok := chunk["error"].(*spb.Status); ok {
			_, entries := httperr.FromStatus(status.FromProto(st))
			body, _ := httperr.Body(entries...)
			return body, nil
		}
	}
	raw, err := m.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// noContentForMutations makes every successful mutation answer 204 with no
// body, as the original API did; reads (isRead: Get*, List*, Count*, Explain*, Download*,
// Stream*) answer 200. The body grpc-gateway writes next is discarded by
// net/http for a 204.
func noContentForMutations(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
	method, ok := runtime.RPCMethod(ctx)
	if !ok {
		return nil
	}
	if isRead(method[strings.LastIndex(method, "/")+1:]) {
		return nil
	}
	w.Header().Del("Content-Type")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
